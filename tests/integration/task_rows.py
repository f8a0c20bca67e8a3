"""Task rows written straight into the tables, at chosen times and in chosen states: what the
history and retention tests read and prune."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import insert

from tasker.status import OPEN_STATES, ResponseState
from tasker.storage import Database
from tasker.storage.models import RESPONSE, TASK


def fresh_type() -> str:
    """A task type no other test writes: the history is read per type."""
    return "t_" + uuid.uuid4().hex[:12]


def add_task(
    db: Database,
    task_type: str,
    identifier: str,
    start: dt.datetime,
    states: dict[str, str],
    status: str = "DONE",
    modified: dt.datetime | None = None,
) -> int:
    """A task of `task_type` created at `start`, a response per endpoint in its state; its id."""
    with db.connection() as connection:
        task_id = connection.execute(
            insert(TASK).values(
                identifier=identifier,
                type=task_type,
                payload=json.dumps({"big": "x" * 100}),
                endpoints=json.dumps(list(states)),
                status=status,
                start_time=start,
                last_modified_time=modified or start,
                deadline=start + dt.timedelta(seconds=30),
            )
        ).inserted_primary_key[0]
        connection.execute(
            insert(RESPONSE),
            [
                {
                    "task_id": task_id,
                    "endpoint": endpoint,
                    "status": 0 if ResponseState(state) in OPEN_STATES else 1,
                    "errnr": 1 if state in ("failed", "missing") else 0,
                    "attempts": 1,
                    "start_time": start,
                    "last_modified_time": modified or start,
                    "state": state,
                    "run": 1,
                    "deadline": start + dt.timedelta(seconds=30),
                }
                for endpoint, state in states.items()
            ],
        )
    return task_id
