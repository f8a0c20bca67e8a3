"""What a manager does with task-responses: receipts, starts, outcomes, orphans (its
registration and heartbeats are `tasker.storage.registrations`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Any, Hashable

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from tasker.clock import utcnow
from tasker.lifecycle import ReceiptDecision, RunRow, decide_receipt, may_finish, seed_status
from tasker.records import TaskRecord
from tasker.status import ResponseState, TaskStatus
from tasker.storage.database import Database, retry_conflicts
from tasker.storage.events import write_response_events
from tasker.storage.limits import hold_back
from tasker.storage.live import OPEN_RUN, OutputSoFar, Progress, write_live
from tasker.storage.models import RESPONSE, TASK, task_record
from tasker.storage.outputs import output_tail, write_outputs
from tasker.storage.settle import lock_tasks, refresh_status

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Arrival:
    """A task message of run `run` that reached a manager of task type `type`."""

    task_id: int
    run: int
    type: str


@dataclasses.dataclass(frozen=True)
class Start:
    """The handler of a run started, in this process group."""

    task_id: int
    run: int
    pgid: int | None


@dataclasses.dataclass(frozen=True)
class Finish:
    """How a run ended: its final state and what the handler (or tasker) said; its `output` as
    kept, and `output_size`, the bytes of UTF-8 it wrote (more than kept when cut)."""

    task_id: int
    run: int
    state: ResponseState
    errnr: int
    errmsg: str | None
    payload: Any
    output: str = dataclasses.field(default="", repr=False)
    output_size: int = 0


@dataclasses.dataclass(frozen=True)
class Orphan:
    """A run this endpoint received and did not finish whose message cannot come back; with
    `errmsg` when it is not to be performed again but recorded failed."""

    task: TaskRecord
    run: int
    attempts: int
    pgid: int | None
    errmsg: str | None = None


class ResponseStore:
    """Task-response rows as one manager sees them. Every method is blocking."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @retry_conflicts
    def record_receipts(
        self, arrivals: list[Arrival], endpoint: str, max_crashes: int | None = None
    ) -> list[tuple[ReceiptDecision, int | None]]:
        """Record the receipt of each arrival in one transaction; say for each what to do next,
        with the process group its run was last running in (None if it never ran). A run its
        managers stopped holding `max_crashes` times is decided `CRASHED` (see `decide_receipt`).

        The response rows are locked, so a receipt and the API's deadline check see each
        other: a run is received before its deadline, or it is stale (and soon `missing`).
        """
        now = utcnow()
        with self.database.connection() as connection:
            task_ids = {arrival.task_id for arrival in arrivals}
            rows, pgids = self._rows(connection, task_ids, endpoint, lock=True)
            # A message says which task it is for, the database says of which type: a message of
            # one type carrying the id of another type's task is unknown here.
            types = dict(connection.execute(_TYPES, {"ids": list(task_ids)}).all())
            decisions, writes = [], {}
            for arrival in arrivals:
                row = rows.get(arrival.task_id) if types.get(arrival.task_id) == arrival.type else None
                decision = decide_receipt(row, arrival.run, now, max_crashes)
                decisions.append((decision, pgids.get(arrival.task_id)))
                if row is not None and decision.attempts != row.attempts:
                    state = decision.state or row.state
                    rows[arrival.task_id] = dataclasses.replace(row, state=state, attempts=decision.attempts)
                    writes[arrival.task_id] = (state, decision.attempts)
            for (state, attempts), task_ids in _grouped(writes).items():
                values = {"b_state": state.value, "b_attempts": attempts, "b_now": now}
                connection.execute(_RECEIVE, {"ids": task_ids, "b_endpoint": endpoint, **values})
            write_response_events(connection, writes, now, endpoint)
            return decisions

    @retry_conflicts
    def record(self, starts: list[Start], outcomes: list[Finish], endpoint: str) -> dict[int, TaskStatus]:
        """Record handler starts and run outcomes in one transaction; return the status of
        each task of an outcome afterwards. An outcome of a run that is not current, or final
        already, is not stored (its task's status is still returned)."""
        now = utcnow()
        with self.database.connection() as connection:
            if starts:
                self._record_starts(connection, starts, endpoint, now)
            if not outcomes:
                return {}
            task_ids = {outcome.task_id for outcome in outcomes}
            before = lock_tasks(connection, task_ids, self.database.locks_rows)
            rows, _ = self._rows(connection, task_ids, endpoint, lock=False)
            current = [o for o in outcomes if may_finish(rows.get(o.task_id), o.run)]
            for outcome in outcomes:
                if outcome not in current:
                    log.info(
                        "task %s on %s: run %d is over already; not storing its outcome",
                        outcome.task_id,
                        endpoint,
                        outcome.run,
                    )
            outcomes_by_task = {o.task_id: _outcome_values(o) for o in current}
            for values, task_ids in _grouped(outcomes_by_task).items():
                connection.execute(_FINISH, {"ids": task_ids, "b_endpoint": endpoint, "b_now": now, **dict(values)})
            write_outputs(connection, current, endpoint, self.database)
            write_response_events(connection, outcomes_by_task, now, endpoint)
            failed = {o.task_id for o in current if o.state in (ResponseState.FAILED, ResponseState.TIMED_OUT)}
            if failed:  # max_errors may hold the rest of these tasks back now
                hold_back(connection, failed, now)
            return refresh_status(connection, before, now)

    def _record_starts(self, connection: Connection, starts: list[Start], endpoint: str, now: dt.datetime) -> None:
        params = {"b_endpoint": endpoint, "b_now": now}
        connection.execute(_START, [dict(params, b_task_id=s.task_id, b_run=s.run, b_pgid=s.pgid) for s in starts])
        write_response_events(connection, {s.task_id for s in starts}, now, endpoint)

    def _rows(
        self, connection: Connection, task_ids: set[int], endpoint: str, lock: bool
    ) -> tuple[dict[int, RunRow], dict[int, int]]:
        """This endpoint's responses to the tasks, and the process groups of those running."""
        query = _ROWS_FOR_UPDATE if lock and self.database.locks_rows else _ROWS
        rows, pgids = {}, {}
        for row in connection.execute(query, {"ids": list(task_ids), "b_endpoint": endpoint}):
            rows[row.task_id] = RunRow(ResponseState(row.state), row.run, row.attempts, row.deadline)
            if row.pgid is not None:
                pgids[row.task_id] = row.pgid
        return rows, pgids

    def record_live(self, progress: list[Progress], outputs: list[OutputSoFar], endpoint: str) -> None:
        """Store the latest progress and output so far of runs, while they are received or running."""
        if progress or outputs:
            with self.database.connection() as connection:
                write_live(connection, endpoint, progress, outputs)

    def cancelled(self, task_ids: list[int]) -> set[int]:
        """Which of these tasks a cancel was requested for."""
        if not task_ids:
            return set()
        with self.database.connection() as connection:
            query = select(TASK.c.id).where(TASK.c.id.in_(task_ids), TASK.c.cancel_requested.is_not(None))
            return set(connection.execute(query).scalars())

    def orphans(
        self,
        task_type: str,
        endpoint: str,
        touched_before: dt.datetime,
        limit: int = 100,
        max_crashes: int | None = None,
    ) -> list[Orphan]:
        """Runs of this endpoint received (or running) and not finished, past their delivery
        deadline, last touched before `touched_before`: their message expired in the queue, so
        only the database can bring them back. Each counts another attempt, as a delivery
        does, and one its managers stopped holding `max_crashes` times comes with the errmsg
        to record it failed with."""
        now = utcnow()
        with self.database.connection() as connection:
            rows = connection.execute(
                select(
                    TASK,
                    RESPONSE.c.run,
                    RESPONSE.c.attempts,
                    RESPONSE.c.pgid,
                    RESPONSE.c.state.label("run_state"),
                    RESPONSE.c.deadline.label("run_deadline"),
                )
                .join(RESPONSE, RESPONSE.c.task_id == TASK.c.id)
                .where(
                    RESPONSE.c.state.in_([ResponseState.RECEIVED.value, ResponseState.RUNNING.value]),
                    RESPONSE.c.deadline < now,
                    RESPONSE.c.endpoint == endpoint,
                    RESPONSE.c.last_modified_time < touched_before,
                    TASK.c.type == task_type,
                )
                .order_by(TASK.c.id)
                .limit(limit)
            ).all()
            orphans = [_orphan(row, now, max_crashes) for row in rows]
            for orphan in orphans:
                connection.execute(
                    update(RESPONSE)
                    .where(RESPONSE.c.task_id == orphan.task.id, RESPONSE.c.endpoint == endpoint)
                    .values(attempts=orphan.attempts, state=ResponseState.RECEIVED.value, last_modified_time=now)
                )
            write_response_events(connection, [orphan.task.id for orphan in orphans], now, endpoint)
            return orphans


def _orphan(row: Any, now: dt.datetime, max_crashes: int | None) -> Orphan:
    """An orphan's row as the lifecycle sees it: another delivery of its run."""
    run_row = RunRow(ResponseState(row.run_state), row.run, row.attempts, row.run_deadline)
    decision = decide_receipt(run_row, row.run, now, max_crashes)
    return Orphan(task_record(row), row.run, decision.attempts, row.pgid, decision.errmsg)


def _outcome_values(outcome: Finish) -> tuple[tuple[str, Any], ...]:
    return (
        ("b_state", outcome.state.value),
        ("b_status", seed_status(outcome.state)),
        ("b_errnr", outcome.errnr),
        ("b_errmsg", outcome.errmsg),
        ("b_payload", json.dumps(outcome.payload)),
        # Runs without output share one UPDATE; one with output has its own tail (its text goes
        # to run_output).
        ("b_output_size", outcome.output_size),
        ("b_output_tail", output_tail(outcome.output)),
    )


def _grouped(writes: dict[int, Hashable]) -> dict[Any, list[int]]:
    """Tasks by the values their rows get: one UPDATE per distinct set of values, not per row
    (runs of one batch mostly end alike)."""
    groups: dict[Any, list[int]] = {}
    for task_id, values in writes.items():
        groups.setdefault(values, []).append(task_id)
    return groups


# Built once: the hot paths run them for every batch (SQLAlchemy caches what they compile to).
_MINE = (RESPONSE.c.task_id.in_(bindparam("ids", expanding=True)), RESPONSE.c.endpoint == bindparam("b_endpoint"))
_ROWS = select(*(RESPONSE.c[name] for name in ("task_id", "state", "run", "attempts", "deadline", "pgid"))).where(
    *_MINE
)
_ROWS_FOR_UPDATE = _ROWS.with_for_update()
_TYPES = select(TASK.c.id, TASK.c.type).where(TASK.c.id.in_(bindparam("ids", expanding=True)))
_RECEIVE = (
    update(RESPONSE)
    .where(*_MINE)
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        start_time=bindparam("b_now"),
        last_modified_time=bindparam("b_now"),
    )
)
_START = (
    update(RESPONSE)
    .where(*OPEN_RUN)
    .values(state=ResponseState.RUNNING.value, pgid=bindparam("b_pgid"), last_modified_time=bindparam("b_now"))
)
_FINISH = (
    update(RESPONSE)
    .where(*_MINE)
    .values(
        state=bindparam("b_state"),
        status=bindparam("b_status"),
        errnr=bindparam("b_errnr"),
        errmsg=bindparam("b_errmsg"),
        payload=bindparam("b_payload"),
        output_size=bindparam("b_output_size"),
        output_tail=bindparam("b_output_tail"),
        pgid=None,
        last_modified_time=bindparam("b_now"),
    )
)
