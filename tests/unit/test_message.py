"""Task messages are JSON of one shape; anything else is refused with a reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from tasker.errors import InvalidTask
from tasker.jsontext import JsonText
from tasker.messaging.message import MAX_MESSAGE_BYTES, decode_task, encode_task
from tasker.records import TaskRecord
from tasker.status import TaskStatus

NOON = dt.datetime(2026, 1, 1, 12, 0, 0)
TASK = TaskRecord(7, "abc", "worker", {"a": 1}, ("console1",), TaskStatus.CREATED, NOON, NOON, NOON)
BODY = json.loads(encode_task(TASK))


def test_a_task_survives_the_round_trip():
    message = decode_task(encode_task(TASK, run=2, deadline=NOON))
    assert (message.id, message.identifier, message.type, message.endpoints, message.payload.value()) == (
        7,
        "abc",
        "worker",
        ("console1",),
        {"a": 1},
    )
    assert (message.run, message.deadline) == (2, "2026-01-01 12:00:00")


def test_a_message_of_an_earlier_version_is_run_one():
    body = {"id": 7, "identifier": "abc", "type": "worker", "endpoints": ["e1"], "payload": 1}
    message = decode_task(json.dumps(body).encode())
    assert (message.run, message.deadline) == (1, None)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\x80\x03}q\x00.", "not JSON"),  # a pickle
        (b"[1]", "not a JSON object"),
        (json.dumps(dict(BODY, id="7")).encode(), "no valid task id"),
        (json.dumps(dict(BODY, id=True)).encode(), "no valid task id"),
        (json.dumps(dict(BODY, type="../../os")).encode(), "no valid task type"),
        (json.dumps(dict(BODY, type="os.path")).encode(), "no valid task type"),
        (json.dumps(dict(BODY, identifier="")).encode(), "no valid identifier"),
        (json.dumps(dict(BODY, endpoints="console1")).encode(), "no valid endpoint list"),
        (json.dumps(dict(BODY, run=0)).encode(), "no valid run"),
        (json.dumps(dict(BODY, deadline=5)).encode(), "no valid deadline"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "over the limit"),
    ],
)
def test_bad_messages_are_refused_with_the_reason(body, reason):
    with pytest.raises(InvalidTask, match=reason):
        decode_task(body)


def test_the_payload_comes_last_and_is_handed_on_as_text_not_parsed():
    task = dataclasses.replace(TASK, payload=JsonText('{"b": [1, "x,\\"payload\\":2"]}'), endpoints=("e1",))
    body = encode_task(task, run=3, deadline=NOON)
    assert body.endswith(b',"payload":{"b": [1, "x,\\"payload\\":2"]}}')
    message = decode_task(body)
    assert isinstance(message.payload, JsonText) and message.payload.value() == {"b": [1, 'x,"payload":2']}
    assert (message.run, message.deadline) == (3, "2026-01-01 12:00:00")


def test_line_breaks_between_the_tokens_of_a_payload_become_spaces():
    body = encode_task(TASK)[:-1] + b"\n}"
    body = body.replace(b'"payload":{', b'"payload":{\r\n')
    message = decode_task(body)
    assert "\n" not in message.payload.text and message.payload.value() == {"a": 1}


def test_a_message_with_the_payload_before_other_keys_is_parsed_whole():
    body = b'{"id":7,"identifier":"abc","type":"worker","endpoints":["e1"],"payload":{"a":1},"run":2}'
    message = decode_task(body)
    assert (message.payload.value(), message.run) == ({"a": 1}, 2)


def test_a_tasks_limits_travel_in_its_message_before_the_payload():
    limited = dataclasses.replace(TASK, timeout=2.5, max_concurrency="25%", max_errors=0)
    body = encode_task(limited)
    assert body.decode().endswith(',"payload":{"a": 1}}')
    message = decode_task(body)
    assert message.timeout == 2.5
    assert (message.limits.max_concurrency, message.limits.max_errors) == ("25%", 0)
    plain = decode_task(encode_task(TASK))
    assert plain.timeout is None and not plain.limits
    assert "timeout" not in json.loads(encode_task(TASK))


@pytest.mark.parametrize(
    "key, value", [("timeout", 0), ("timeout", "1"), ("max_concurrency", "x%"), ("max_errors", -1), ("max_errors", [])]
)
def test_a_message_with_a_bad_limit_is_refused(key, value):
    with pytest.raises(InvalidTask, match="message has no valid %s" % key):
        decode_task(json.dumps(dict(BODY, **{key: value})).encode())
