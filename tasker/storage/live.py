"""What a run shows while it goes on: the latest progress its handler reported, and the output
it wrote so far (its size and last characters). Written every half second at most by the
manager running it, only while the run is open: an outcome recorded first is never overwritten."""

from __future__ import annotations

import dataclasses

from sqlalchemy import bindparam, or_, update
from sqlalchemy.engine import Connection

from tasker.clock import utcnow
from tasker.status import ResponseState
from tasker.storage.events import write_response_events
from tasker.storage.models import RESPONSE


@dataclasses.dataclass(frozen=True)
class Progress:
    """The latest progress the handler of a run reported: percent, and an optional message."""

    task_id: int
    run: int
    percent: float
    message: str | None


@dataclasses.dataclass(frozen=True)
class OutputSoFar:
    """What a run has written so far: its size in bytes and its last characters."""

    task_id: int
    run: int
    size: int
    tail: str


def write_live(connection: Connection, endpoint: str, progress: list[Progress], outputs: list[OutputSoFar]) -> None:
    """Store the latest progress and output of these runs of `endpoint`, where still open."""
    if progress:
        connection.execute(
            _PROGRESS,
            [_run(endpoint, r.task_id, r.run, b_percent=r.percent, b_message=r.message) for r in progress],
        )
        write_response_events(connection, {r.task_id for r in progress}, utcnow(), endpoint)
    if outputs:
        connection.execute(
            _OUTPUT_SO_FAR,
            [_run(endpoint, o.task_id, o.run, b_output_size=o.size, b_output_tail=o.tail) for o in outputs],
        )


def _run(endpoint: str, task_id: int, run: int, **values: object) -> dict[str, object]:
    return dict(values, b_endpoint=endpoint, b_task_id=task_id, b_run=run)


# One run of one response, while it is received or running (a redelivered run may be running
# already: its manager died; its new start counts). Run once per row (executemany), so no IN:
# an expanding parameter cannot go in an executemany.
OPEN_RUN = (
    RESPONSE.c.task_id == bindparam("b_task_id"),
    RESPONSE.c.endpoint == bindparam("b_endpoint"),
    RESPONSE.c.run == bindparam("b_run"),
    or_(RESPONSE.c.state == ResponseState.RECEIVED.value, RESPONSE.c.state == ResponseState.RUNNING.value),
)
_PROGRESS = (
    update(RESPONSE).where(*OPEN_RUN).values(progress=bindparam("b_percent"), progress_message=bindparam("b_message"))
)
_OUTPUT_SO_FAR = (
    update(RESPONSE)
    .where(*OPEN_RUN)
    .values(output_size=bindparam("b_output_size"), output_tail=bindparam("b_output_tail"))
)
