"""JSON log lines and the masking of secrets (tasker.cli.log_format), and the config keys that
choose them."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from tasker.cli.log_format import JsonFormatter, SecretMask, TextFormatter, about, config_secrets
from tasker.config import load_config
from tasker.errors import ConfigError

TOKEN = "t0ken-abcdef-123456"
CONFIG = (
    """
task_types: [worker]
api:
  tokens: ["%s"]
  metrics: {tokens: ["scrape-token-98765"]}
  webhooks:
    - {url: "https://hooks:url-password-1@hooks.example/tasker", secret: "webhook-secret-42"}
manager:
  db: {uri: "mysql+pymysql://tasker:db%%40pass-word@db.example:3306/tasker"}
  message_queue: {password: "rabbit-password-1"}
rabbitmq:
  endpoint_users:
    console1: {username: console1, password: "console1-secret"}
logging:
  format: json
"""
    % TOKEN
)


def record(msg: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("tasker.manager", level, __file__, 1, msg, args or None, None)
    made.__dict__.update(extra)
    return made


def line(formatter: logging.Formatter, made: logging.LogRecord) -> dict:
    text = formatter.format(made)
    assert "\n" not in text
    return json.loads(text)


@pytest.fixture
def config(tmp_path):
    (tmp_path / "m.config.yaml").write_text(CONFIG)
    return load_config("m", tmp_path)


def test_a_json_line_has_time_level_logger_message_and_process():
    got = line(JsonFormatter(), record("manager of %s for endpoint %s started", "worker", "console1"))
    assert got["level"] == "INFO" and got["logger"] == "tasker.manager"
    assert got["message"] == "manager of worker for endpoint console1 started"
    assert got["time"].endswith("Z") and len(got["time"]) == 24 and isinstance(got["process"], int)
    assert "task" not in got and "endpoint" not in got


def test_a_message_about_a_task_on_an_endpoint_gives_both_fields():
    got = line(JsonFormatter(), record("task %s on %s: handler raised\n%s", "deploy-1", "console2", "Traceback..."))
    assert (got["task"], got["endpoint"]) == ("deploy-1", "console2")
    assert got["message"] == "task deploy-1 on console2: handler raised\nTraceback..."


@pytest.mark.parametrize(
    "msg, args, expected",
    [
        ("task %s (%s) accepted, not confirmed sent: %s", ("a1", "worker", "down"), {"task": "a1", "type": "worker"}),
        ("task %s run %d on %s is over already (%s)", ("a2", 3, "c1", "stale"), {"task": "a2", "endpoint": "c1"}),
        ("dead-lettering task %s on %s: %s", ("a3", "c2", "unknown"), {"task": "a3", "endpoint": "c2"}),
        ("%d%% done: task %s on %s", (50, "a4", "c3"), {"task": "a4", "endpoint": "c3"}),
        ("renewing the delivery of task %s before the consumer timeout", ("a5",), {"task": "a5"}),
        ("task %s on %s", ("only-one",), {}),
        ("%d unsent tasks left", (3,), {}),
    ],
)
def test_the_task_and_endpoint_are_read_from_tasker_wording(msg, args, expected):
    assert about(record(msg, *args)) == expected


def test_fields_given_as_extra_win_over_the_wording_and_the_processes_own():
    formatter = JsonFormatter(fields={"type": "worker", "endpoint": "console1"})
    got = line(formatter, record("task %s on %s: done", "x", "console9", task="y"))
    assert (got["task"], got["endpoint"], got["type"]) == ("y", "console9", "worker")
    assert line(formatter, record("stopping"))["endpoint"] == "console1"


def test_an_exception_is_one_field_of_the_same_line():
    try:
        raise RuntimeError("disk full")
    except RuntimeError:
        made = logging.LogRecord("tasker.api", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    got = line(JsonFormatter(), made)
    assert got["level"] == "ERROR" and "RuntimeError: disk full" in got["exception"]


def test_values_that_are_not_json_are_written_as_text():
    got = line(JsonFormatter(), record("task %s on %s", b"raw", "c1"))
    assert got["task"] == "b'raw'"


def test_every_secret_of_the_config_is_found(config):
    secrets = set(config_secrets(config))
    assert {TOKEN, "scrape-token-98765", "rabbit-password-1", "console1-secret", "webhook-secret-42"} <= secrets
    assert "url-password-1" in secrets
    assert {"db%40pass-word", "db@pass-word"} <= secrets  # as written in the URL, and decoded
    assert "tasker" not in secrets and "console1" not in secrets


def test_secrets_are_masked_in_json_and_text_lines(config):
    mask = SecretMask(config_secrets(config))
    made = record("GET /worker/%s refused; database db@pass-word", TOKEN)
    for formatter in (JsonFormatter(mask), TextFormatter(mask)):
        text = formatter.format(made)
        assert TOKEN not in text and "pass-word" not in text and "***" in text
    assert line(JsonFormatter(mask), record("task %s on %s: done", TOKEN, "c1"))["task"] == "***"


def test_a_short_value_is_not_masked_like_a_word():
    assert SecretMask(["guest", "longer-secret"])("user guest, password longer-secret") == "user guest, password ***"


def test_logging_format_is_text_by_default_and_refuses_others(tmp_path, config):
    assert config.logging.format == "json"
    (tmp_path / "t.config.yaml").write_text("task_types: [worker]\nmanager: {db: {uri: 'sqlite://'}}\n")
    assert load_config("t", tmp_path).logging.format == "text"
    (tmp_path / "x.config.yaml").write_text(
        "task_types: [worker]\nmanager: {db: {uri: 'sqlite://'}}\nlogging: {format: xml}\n"
    )
    with pytest.raises(ConfigError, match="logging.format must be text or json"):
        load_config("x", tmp_path)
