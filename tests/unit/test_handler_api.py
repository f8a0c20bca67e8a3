"""What a handler answers is checked: a 32-bit errnr, a JSON payload, a bounded errmsg; the
example handlers answer the seed's results."""

from __future__ import annotations

import pytest

from tasker.manager.handler import backup, worker
from tasker.manager.handler_api import Task, TaskResponse, checked

TASK = Task(3, "abc", "worker", {"foo": "bar"}, ["console1"], {"wait": 0})


def response(**values):
    return TaskResponse(3, "console1", 1, **values)


def test_the_worker_handler_answers_the_seed_payload():
    answered = checked(worker.handle_task(TASK, response()))
    assert (answered.errnr, answered.errmsg, answered.payload) == (0, None, {"yeah": 1234123, "yiya": "yippie"})


def test_the_backup_handler_fails_with_errnr_32():
    answered = checked(backup.handle_task(TASK, response()))
    assert (answered.errnr, answered.errmsg) == (32, "could not backup!")


@pytest.mark.parametrize(
    "values, errmsg",
    [
        ({"payload": object()}, "payload that is not JSON"),
        ({"errnr": "bad"}, "errnr to 'bad'"),
        ({"errnr": True}, "errnr to True"),
        ({"errnr": 2**40}, "not an int of 32 bits"),
        ({"payload": float("nan")}, "not JSON"),
    ],
)
def test_an_answer_that_is_not_what_tasker_stores_is_errnr_1(values, errmsg):
    answered = checked(response(**values))
    assert answered.errnr == 1 and errmsg in answered.errmsg and answered.payload is None


def test_a_huge_errmsg_is_shortened_to_what_the_database_keeps():
    answered = checked(response(errnr=5, errmsg="x" * 100_000))
    assert len(answered.errmsg) == 10_000 and answered.errmsg.endswith("(100000 characters)")
    assert answered.errnr == 5
