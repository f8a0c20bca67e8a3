"""Webhooks' rules: the signature a receiver checks, when a failed delivery is tried again,
what a webhook gets, and which configurations are refused."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest

from tasker.config import load_config
from tasker.errors import ConfigError
from tasker.webhooks import (
    Retry,
    event_body,
    is_signed,
    next_attempt,
    retry_delay,
    shown_url,
    signature,
    signed_headers,
    wants,
    webhook_key,
)

SECRET = "s3cret-of-sixteen-chars"
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def test_the_signature_is_the_hmac_sha256_of_timestamp_dot_body_as_documented():
    body = b'{"id":"7","event":"task","data":{}}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, "1700000000", body) == "sha256=" + expected


def test_a_signature_holds_only_for_its_secret_timestamp_and_body():
    body = b'{"a":1}'
    signed = signature(SECRET, "100", body)
    assert is_signed(SECRET, "100", body, signed)
    assert not is_signed(SECRET + "x", "100", body, signed)
    assert not is_signed(SECRET, "101", body, signed)
    assert not is_signed(SECRET, "100", b'{"a":2}', signed)


def test_the_headers_of_a_delivery_carry_its_id_time_and_signature():
    body = b"{}"
    headers = signed_headers("42", SECRET, body, 1700000000.9)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Tasker-Delivery"] == "42"
    assert headers["X-Tasker-Timestamp"] == "1700000000"
    assert is_signed(SECRET, "1700000000", body, headers["X-Tasker-Signature"])


def test_the_body_names_the_event_as_the_event_stream_does():
    data = json.dumps({"type": "worker", "identifier": "a", "status": "DONE"})
    assert json.loads(event_body(12, "task", data)) == {"id": "12", "event": "task", "data": json.loads(data)}


def test_retries_double_from_the_first_delay_up_to_the_cap_jittered_down_by_at_most_half():
    retry = Retry(first=10, cap=100, give_up=86400)
    assert [retry_delay(n, retry, lambda: 1.0) for n in range(1, 7)] == [10, 20, 40, 80, 100, 100]
    assert [retry_delay(n, retry, lambda: 0.0) for n in range(1, 7)] == [5, 10, 20, 40, 50, 50]
    assert retry_delay(10_000, retry, lambda: 0.5) == 75  # no overflow however many attempts


def test_a_delivery_is_given_up_once_the_give_up_time_passed_since_it_was_made():
    retry = Retry(first=1, cap=60, give_up=3600)
    assert next_attempt(3, T0, T0 + dt.timedelta(seconds=10), retry, lambda: 1.0) == T0 + dt.timedelta(seconds=14)
    assert next_attempt(3, T0, T0 + dt.timedelta(seconds=3599), retry, lambda: 1.0) is not None
    assert next_attempt(3, T0, T0 + dt.timedelta(seconds=3600), retry) is None


def test_a_retry_time_is_rounded_up_to_the_second_the_database_keeps():
    retry = Retry(first=0.2, cap=1, give_up=3600)
    failed = T0 + dt.timedelta(seconds=5, microseconds=900_000)
    assert next_attempt(1, T0, failed, retry, lambda: 1.0) == T0 + dt.timedelta(seconds=7)
    assert next_attempt(1, T0, T0 + dt.timedelta(seconds=5), Retry(first=2), lambda: 1.0) == T0 + dt.timedelta(
        seconds=7
    )


def test_a_webhook_gets_the_kinds_and_types_it_names_and_every_type_when_it_names_none():
    both = frozenset({"task", "response"})
    assert wants(frozenset(), both, "task", "worker")
    assert wants(frozenset({"worker"}), both, "response", "worker")
    assert not wants(frozenset({"worker"}), both, "task", "backup")
    assert not wants(frozenset(), frozenset({"task"}), "response", "worker")


def test_a_webhook_is_known_by_its_url_and_logged_without_credentials_or_query():
    assert webhook_key("https://a.example/hook") == webhook_key("https://a.example/hook")
    assert webhook_key("https://a.example/hook") != webhook_key("https://a.example/hook2")
    assert len(webhook_key("https://a.example/hook")) == 32
    assert shown_url("https://user:pw@a.example:8443/hook?token=x") == "https://a.example:8443/hook"


BASE = """
task_types: [worker, backup]
manager:
  db:
    uri: "sqlite://"
api:
  auth: none
  webhooks:
%s
"""


def load(tmp_path, webhooks: str):
    (tmp_path / "x.config.yaml").write_text(BASE % webhooks)
    return load_config("x", tmp_path)


def test_a_webhook_s_secret_comes_from_the_environment_and_events_default_to_both(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    config = load(tmp_path, '    - {url: "https://h.example/x", secret: "{HOOK_SECRET}", types: [worker]}')
    webhook = config.api.webhooks[0]
    assert (webhook.url, webhook.secret, webhook.types, webhook.events) == (
        "https://h.example/x",
        SECRET,
        ["worker"],
        ["task", "response"],
    )
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    "entry, message",
    [
        ('{url: "https://h.example/x"}', r"api.webhooks\[0\]: a webhook needs a secret"),
        ('{url: "https://h.example/x", secret: "   "}', "needs a secret"),
        ('{url: "https://h.example/x", secret: "short"}', "at least 16 characters"),
        ('{url: "ftp://h.example/x", secret: "%s"}' % SECRET, "not an http:// or https:// URL"),
        ('{url: "file:///etc/passwd", secret: "%s"}' % SECRET, "not an http:// or https:// URL"),
        ('{url: "h.example/x", secret: "%s"}' % SECRET, "not an http:// or https:// URL"),
        ('{url: "http://h.example:port/x", secret: "%s"}' % SECRET, "is not a URL"),
        ('{url: "http://h.example/a b", secret: "%s"}' % SECRET, "white space"),
        ('{url: "https://h.example/x", secret: "%s", types: [nope]}' % SECRET, "'nope' is not in task_types"),
        ('{url: "https://h.example/x", secret: "%s", events: []}' % SECRET, "events is empty"),
        ('{url: "https://h.example/x", secret: "%s", events: [run]}' % SECRET, "'run' is not an event"),
        ('{secret: "%s"}' % SECRET, r"missing configuration key api.webhooks\[0\].url"),
        ('{url: "https://h.example/x", secret: "%s", extra: 1}' % SECRET, "unknown configuration key"),
    ],
)
def test_a_webhook_that_cannot_be_called_safely_is_refused(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, "    - " + entry)


def test_the_same_url_twice_is_refused(tmp_path):
    entry = '    - {url: "https://h.example/x", secret: "%s"}\n' % SECRET
    with pytest.raises(ConfigError, match="configured twice"):
        load(tmp_path, entry * 2)


def test_delivery_settings_out_of_range_are_refused(tmp_path):
    text = BASE % "    []" + "  webhook_delivery: {first_retry: 10, max_retry_delay: 5}\n"
    (tmp_path / "x.config.yaml").write_text(text)
    with pytest.raises(ConfigError, match="max_retry_delay must not be below first_retry"):
        load_config("x", tmp_path)
