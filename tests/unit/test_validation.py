"""What a POST body must look like, checked without a server."""

from __future__ import annotations

import json

import pytest

from tasker.api.validation import parse_new_task
from tasker.errors import InvalidTask


def parse(body):
    return parse_new_task("worker", body if isinstance(body, bytes) else json.dumps(body).encode())


def test_a_full_body_becomes_a_new_task():
    new = parse({"identifier": "a.b:c_d-1", "payload": {"x": [1]}, "endpoints": ["console1", "c2"]})
    assert (new.type, new.identifier, new.payload.value(), new.endpoints) == (
        "worker",
        "a.b:c_d-1",
        {"x": [1]},
        ["console1", "c2"],
    )


def test_payload_defaults_to_empty_string_and_endpoints_to_everyone():
    new = parse({"identifier": "x"})
    assert new.payload.value() == "" and new.endpoints is None


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "body is not valid JSON"),
        (b"\xff\xfe", "body is not UTF-8"),
        ([1, 2], "body must be a JSON object, not a list"),
        ({"payload": 1}, "identifier is missing"),
        ({"identifier": 12}, "identifier must be a string, not a number"),
        ({"identifier": ""}, "is not 1 to 50 characters"),
        ({"identifier": "a" * 51}, "is not 1 to 50 characters"),
        ({"identifier": "a/b"}, "is not 1 to 50 characters"),
        ({"identifier": "x", "endpoints": "console1"}, "endpoints must be a list of names, not a string"),
        ({"identifier": "x", "endpoints": None}, "endpoints must be a list of names, not null"),
        ({"identifier": "x", "endpoints": []}, "at least one endpoint"),
        ({"identifier": "x", "endpoints": [1]}, "endpoints must hold strings"),
        ({"identifier": "x", "endpoints": ["a", "a"]}, "endpoint 'a' is named more than once"),
        ({"identifier": "x", "endpoints": ["bad name"]}, "endpoint name 'bad name' is not"),
        ({"identifier": "x", "colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_bad_bodies_say_what_is_wrong(body, message):
    with pytest.raises(InvalidTask, match=message):
        parse(body)


def test_too_many_endpoints_are_refused():
    with pytest.raises(InvalidTask, match="more than 3"):
        parse_new_task("worker", json.dumps({"identifier": "x", "endpoints": list("abcd")}).encode(), 3)


def test_nan_and_infinity_are_not_json():
    for body in (b'{"identifier": "x", "payload": NaN}', b'{"identifier": "x", "payload": [-Infinity]}'):
        with pytest.raises(InvalidTask, match="is not a JSON value"):
            parse(body)


def test_a_number_too_large_for_a_double_is_refused_not_stored_as_infinity():
    for body in (b'{"identifier": "x", "payload": 1e400}', b'{"identifier": "x", "payload": {"a": [-1E999]}}'):
        with pytest.raises(InvalidTask, match="is out of range"):
            parse(body)
    assert parse(b'{"identifier": "x", "payload": 1.5e300}').payload.value() == 1.5e300


def test_payloads_nested_deeper_than_the_limit_are_refused_without_a_recursion_error():
    assert parse_new_task("worker", json.dumps({"identifier": "x", "payload": [[[1]]]}).encode(), max_depth=3)
    with pytest.raises(InvalidTask, match="nested deeper than 2 levels"):
        parse_new_task("worker", json.dumps({"identifier": "x", "payload": [[[1]]]}).encode(), max_depth=2)
    for depth in (100, 100_000):
        with pytest.raises(InvalidTask, match="nested deeper than 64 levels"):
            parse(b'{"identifier": "x", "payload": ' + b"[" * depth + b"]" * depth + b"}")


def test_a_trailing_newline_is_not_part_of_a_valid_name():
    with pytest.raises(InvalidTask, match="is not 1 to 50 characters"):
        parse({"identifier": "abc\n"})
    with pytest.raises(InvalidTask, match="is not 1 to 50 characters"):
        parse({"identifier": "abc", "endpoints": ["console1\n"]})


def test_the_payload_is_kept_as_canonical_text():
    """Keys sorted, so a retry with the keys in another order is the same task."""
    first = parse(b'{"identifier": "x", "payload": {"b": 1, "a": [true, null]}}')
    again = parse(b'{"identifier": "x", "payload": {"a": [true, null], "b": 1}}')
    assert first.payload.text == again.payload.text == '{"a": [true, null], "b": 1}'


@pytest.mark.parametrize("depth", [1, 2, 63, 64, 65, 66, 500])
def test_the_depth_rule_counts_lists_and_objects_not_brackets_in_strings(depth):
    nested = "[" * (depth - 1) + '{"k": "[[[[{{"}' + "]" * (depth - 1)
    body = ('{"identifier": "x", "payload": %s}' % nested).encode()
    if depth <= 64:
        assert parse(body).payload.value() is not None
    else:
        with pytest.raises(InvalidTask, match="nested deeper than 64 levels"):
            parse(body)


def test_limits_are_taken_as_given():
    new = parse({"identifier": "x", "timeout": 90, "max_concurrency": "25%", "max_errors": 0})
    assert (new.timeout, new.max_concurrency, new.max_errors) == (90.0, "25%", 0)
    new = parse({"identifier": "x", "timeout": 0.5, "max_concurrency": 2.0, "max_errors": "100%"})
    assert (new.timeout, new.max_concurrency, new.max_errors) == (0.5, 2, "100%")
    new = parse({"identifier": "x"})
    assert (new.timeout, new.max_concurrency, new.max_errors) == (None, None, None)


@pytest.mark.parametrize(
    "limits, message",
    [
        ({"timeout": 0}, "timeout must be above 0 and at most 86400 seconds (api.max_timeout)"),
        ({"timeout": 86401}, "timeout must be above 0 and at most 86400 seconds"),
        ({"timeout": "60"}, "timeout must be a number of seconds, not a string"),
        ({"timeout": True}, "timeout must be a number of seconds, not a boolean"),
        ({"max_concurrency": 0}, "max_concurrency must be an integer from 1 to 1000000"),
        ({"max_concurrency": "0%"}, "max_concurrency must be an integer from 1 to 1000000"),
        ({"max_concurrency": "101%"}, "max_concurrency must be an integer"),
        ({"max_concurrency": 1.5}, "max_concurrency must be an integer"),
        ({"max_errors": -1}, "max_errors must be an integer from 0 to 1000000"),
        ({"max_errors": "5"}, "max_errors must be an integer"),
        ({"max_errors": False}, "max_errors must be an integer"),
    ],
)
def test_bad_limits_say_what_is_wrong(limits, message):
    with pytest.raises(InvalidTask) as caught:
        parse(dict(identifier="x", **limits))
    assert message in str(caught.value)


def test_the_longest_timeout_is_the_apis_setting():
    body = json.dumps({"identifier": "x", "timeout": 120}).encode()
    assert parse_new_task("worker", body, max_timeout=120).timeout == 120
    with pytest.raises(InvalidTask, match="at most 60 seconds"):
        parse_new_task("worker", body, max_timeout=60)


def test_a_limit_beyond_a_million_is_refused():
    with pytest.raises(InvalidTask, match="max_concurrency must be an integer from 1 to 1000000"):
        parse({"identifier": "x", "max_concurrency": 8069686000})


@pytest.mark.parametrize("key", ["timeout", "max_concurrency", "max_errors"])
def test_a_limit_of_null_is_refused_as_endpoints_null_is(key):
    with pytest.raises(InvalidTask, match="%s must be" % key):
        parse({"identifier": "x", key: None})
