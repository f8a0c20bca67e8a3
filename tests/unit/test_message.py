"""Task messages are JSON of one shape; anything else is refused with a reason."""

from __future__ import annotations

import json

import pytest

from tasker.errors import InvalidTask
from tasker.messaging.message import MAX_MESSAGE_BYTES, decode_task, encode_task

TASK = {
    "id": 7,
    "identifier": "abc",
    "type": "worker",
    "endpoints": ["console1"],
    "payload": {"a": 1},
    "status": "CREATED",
    "start_time": "2026-01-01 00:00:00",
}


def test_a_task_survives_the_round_trip():
    message = decode_task(encode_task(TASK))
    assert (message.id, message.identifier, message.type, message.endpoints, message.payload) == (
        7,
        "abc",
        "worker",
        ("console1",),
        {"a": 1},
    )


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\x80\x03}q\x00.", "not JSON"),  # a pickle
        (b"[1]", "not a JSON object"),
        (json.dumps(dict(TASK, id="7")).encode(), "no valid task id"),
        (json.dumps(dict(TASK, id=True)).encode(), "no valid task id"),
        (json.dumps(dict(TASK, type="../../os")).encode(), "no valid task type"),
        (json.dumps(dict(TASK, type="os.path")).encode(), "no valid task type"),
        (json.dumps(dict(TASK, identifier="")).encode(), "no valid identifier"),
        (json.dumps(dict(TASK, endpoints="console1")).encode(), "no valid endpoint list"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "over the limit"),
    ],
)
def test_bad_messages_are_refused_with_the_reason(body, reason):
    with pytest.raises(InvalidTask, match=reason):
        decode_task(body)
