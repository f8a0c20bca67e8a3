"""`GET /<type>`'s query string and cursor: what is taken, what is refused and why; the view of
a listed task; `api.retention_days`."""

from __future__ import annotations

import datetime as dt

import pytest

from tasker.api.history import encode_cursor, history_query, history_view
from tasker.config import load_config
from tasker.errors import ConfigError, InvalidTask
from tasker.jsontext import JsonText
from tasker.records import TaskRecord
from tasker.status import ResponseState, TaskStatus
from tasker.storage.history import HistoryPage, Listed

T = dt.datetime(2026, 5, 17, 8, 30, 5)


def parse(**arguments: str):
    return history_query("worker", {key: [value.encode()] for key, value in arguments.items()}, arguments.get)


def test_no_parameters_ask_for_the_newest_fifty():
    query = parse()
    assert (query.type, query.limit, query.after, query.status, query.identifier) == ("worker", 50, None, None, None)


def test_every_filter_is_taken_as_written():
    query = parse(
        status="INCOMPLETE",
        endpoint="console1",
        state="failed",
        since="2026-05-01 00:00:00",
        until="2026-05-17 08:30:05",
        identifier="deploy_1.",
        limit="500",
        cursor=encode_cursor((T, 41)),
    )
    assert query.status is TaskStatus.INCOMPLETE and query.state is ResponseState.FAILED
    assert (query.endpoint, query.identifier, query.limit) == ("console1", "deploy_1.", 500)
    assert (query.since, query.until) == (dt.datetime(2026, 5, 1), T)
    assert query.after == (T, 41)


def test_a_cursor_is_opaque_url_safe_text_that_gives_its_position_back():
    for position in ((T, 1), (T.replace(microsecond=123456), 2**63 - 1), (dt.datetime(2000, 1, 1), 7)):
        cursor = encode_cursor(position)
        assert cursor.replace("-", "").replace("_", "").isalnum() and "=" not in cursor
        assert parse(cursor=cursor).after == position


REFUSED = [
    ({"status": "done"}, "status must be one of CREATED, SENT, DONE, INCOMPLETE, CANCELLED, not 'done'"),
    ({"state": ""}, "state must be one of queued, received, running"),
    ({"endpoint": "a b"}, "endpoint must be an endpoint name (1 to 50 characters"),
    ({"identifier": "50%"}, "identifier must be the start of an identifier"),
    ({"identifier": "x" * 51}, "identifier must be the start of an identifier"),
    ({"since": "2026-05-01"}, "since must be a UTC time as YYYY-MM-DD HH:MM:SS, not '2026-05-01'"),
    ({"until": "2026-05-01 24:00:00"}, "until must be a UTC time"),
    ({"since": "2026-05-01 00:00:00\n"}, "since must be a UTC time"),
    ({"since": "٢٠٢٦-05-01 00:00:00"}, "since must be a UTC time"),
    ({"since": "2026-05-02 00:00:00", "until": "2026-05-01 00:00:00"}, "since (2026-05-02 00:00:00) is after until"),
    ({"limit": "0"}, "limit must be a whole number from 1 to 500, not '0'"),
    ({"limit": " 5"}, "limit must be a whole number"),
    ({"limit": "5_0"}, "limit must be a whole number"),
    ({"limit": "1000"}, "limit must be a whole number"),
    ({"cursor": ""}, "is not one this API gave out"),
    ({"cursor": "a" * 65}, "is not one this API gave out"),
    ({"cursor": "MjAyNi0wNS0xNy41"}, "is not one this API gave out"),  # "2026-05-17.5"
    ({"cursor": "/w"}, "is not one this API gave out"),
    ({"cursor": "_w"}, "is not one this API gave out"),  # not ASCII once decoded
    ({"cursor": encode_cursor((T, 2**63))}, "is not one this API gave out"),  # no database holds that id
    ({"wait": "5"}, "unknown query parameter 'wait' (known: status, endpoint, state"),
]


@pytest.mark.parametrize("arguments,reason", REFUSED, ids=[",".join(a) for a, _ in REFUSED])
def test_a_bad_parameter_is_refused_with_its_reason(arguments, reason):
    with pytest.raises(InvalidTask) as refused:
        parse(**arguments)
    assert reason in str(refused.value)


def test_a_listed_task_shows_what_a_read_shows_but_its_payload():
    task = TaskRecord(7, "deploy-1", "worker", JsonText('{"v": 1}'), ("c1", "c2"), TaskStatus.SENT, T, T, T)
    page = HistoryPage([Listed(task, [ResponseState.SUCCEEDED, ResponseState.RUNNING])], (T, 7))
    (shown,) = history_view(page)["tasks"]
    assert "payload" not in shown and shown["identifier"] == "deploy-1" and shown["start_time"] == "2026-05-17 08:30:05"
    assert shown["counts"]["succeeded"] == shown["counts"]["running"] == 1 and shown["settled"] is False
    assert parse(cursor=history_view(page)["next"]).after == (T, 7)


def test_retention_days_defaults_to_90_and_may_not_be_negative(tmp_path):
    base = 'task_types: [worker]\nmanager: {db: {uri: "sqlite://"}}\n'
    (tmp_path / "x.config.yaml").write_text(base)
    assert load_config("x", tmp_path).api.retention_days == 90
    (tmp_path / "x.config.yaml").write_text(base + "api: {retention_days: 0}\n")
    assert load_config("x", tmp_path).api.retention_days == 0
    (tmp_path / "x.config.yaml").write_text(base + "api: {retention_days: -1}\n")
    with pytest.raises(ConfigError, match="api.retention_days must be 0"):
        load_config("x", tmp_path)
