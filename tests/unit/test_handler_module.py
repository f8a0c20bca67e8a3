"""Running a task handler module: results, exceptions as errnr 1, and what may be imported."""

from __future__ import annotations

import sys
import types

import pytest

from tasker.config import load_config
from tasker.errors import HandlerModuleError
from tasker.manager.handler_module import HandlerModule
from tasker.messaging.message import TaskMessage

MESSAGE = TaskMessage(3, "abc", "worker", ("console1",), {"foo": "bar"})


@pytest.fixture
def config(tmp_path):
    (tmp_path / "x.config.yaml").write_text(
        "task_types: [worker, backup, failing, odd]\n"
        "manager:\n  db: {uri: 'sqlite://'}\n"
        "  handler_modules: {failing: tests.handlers.failing, odd: fake_odd_handler}\n"
        "  handler_settings: {worker: {wait: 0}, backup: {wait: 0}}\n"
    )
    return load_config("x", tmp_path)


def test_the_worker_handler_answers_the_seed_payload(config):
    response = HandlerModule(config, "worker").run(MESSAGE, "console1", 1)
    assert (response.errnr, response.errmsg, response.payload) == (0, None, {"yeah": 1234123, "yiya": "yippie"})


def test_the_backup_handler_fails_with_errnr_32(config):
    response = HandlerModule(config, "backup").run(MESSAGE, "console2", 1)
    assert (response.errnr, response.errmsg) == (32, "could not backup!")


def test_a_raising_handler_gives_errnr_1_with_the_message(config):
    response = HandlerModule(config, "failing").run(MESSAGE, "console1", 1)
    assert response.errnr == 1
    assert response.errmsg == "RuntimeError: disk full on console1"


@pytest.mark.parametrize(
    "handle, errmsg",
    [
        (lambda task, response: setattr(response, "payload", object()) or response, "payload that is not JSON"),
        (lambda task, response: setattr(response, "errnr", "bad") or response, "errnr to 'bad'"),
        (lambda task, response: 42, "returned int, not the taskResponse"),
        (lambda task, response: setattr(response, "errnr", 2**40) or response, "not an int of 32 bits"),
        (lambda task, response: setattr(response, "payload", float("nan")) or response, "not JSON"),
        (lambda task, response: sys.exit(3), "SystemExit: 3"),
    ],
)
def test_a_handler_that_answers_nonsense_gives_errnr_1(config, monkeypatch, handle, errmsg):
    module = types.ModuleType("fake_odd_handler")
    module.handle_task = handle
    monkeypatch.setitem(sys.modules, "fake_odd_handler", module)
    response = HandlerModule(config, "odd").run(MESSAGE, "console1", 1)
    assert response.errnr == 1 and errmsg in response.errmsg


def test_a_task_type_that_is_not_configured_loads_nothing(config):
    with pytest.raises(HandlerModuleError, match="'os' is not configured"):
        HandlerModule(config, "os")


def test_a_huge_errmsg_is_shortened_to_what_the_database_keeps(config, monkeypatch):
    module = types.ModuleType("fake_odd_handler")
    module.handle_task = lambda task, response: setattr(response, "errmsg", "x" * 100_000) or response
    monkeypatch.setitem(sys.modules, "fake_odd_handler", module)
    response = HandlerModule(config, "odd").run(MESSAGE, "console1", 1)
    assert len(response.errmsg) == 10_000 and response.errmsg.endswith("(100000 characters)")
