"""Payloads as text: spliced into the JSON around them, never parsed again on the way."""

from __future__ import annotations

import json
import time

from tasker.api.loop_watch import WINDOW_SECONDS, LoopWatch
from tasker.jsontext import JsonText, dumps


def test_text_is_spliced_where_the_value_stands():
    body = {"task": {"payload": JsonText('{"a": [1, 2.5, null]}'), "n": 1}, "list": [JsonText("[]"), "plain"]}
    assert json.loads(dumps(body)) == {"task": {"payload": {"a": [1, 2.5, None]}, "n": 1}, "list": [[], "plain"]}


def test_a_string_that_looks_like_a_placeholder_stays_a_string():
    tricky = "\x00json-0000000000000000-0"
    body = {"errmsg": tricky, "payload": JsonText("7")}
    assert json.loads(dumps(body)) == {"errmsg": tricky, "payload": 7}


def test_canonical_text_sorts_keys_so_equal_values_are_equal_texts():
    assert JsonText.of({"b": 1, "a": 2}) == JsonText.of({"a": 2, "b": 1})
    assert JsonText.of({"b": 1, "a": 2}).value() == {"a": 2, "b": 1}


def test_the_loop_watch_keeps_the_worst_lag_of_the_last_minute():
    watch = LoopWatch(warn_after=10.0)
    now = time.monotonic()
    watch.record(now - WINDOW_SECONDS - 5, 0.300)
    watch.record(now, 0.120)
    watch.record(now, 0.040)
    assert watch.worst() == 0.120, "the 300 ms of over a minute ago is forgotten"
