"""Server-Sent Events as the `tasker` command reads them from `GET /events`."""

from __future__ import annotations

from tasker.client.sse import ID_ONLY, Event, FrameParser, LineSplitter


def feed(text: str) -> list[Event]:
    parser = FrameParser()
    events = [parser.feed(line) for line in text.split("\n")]
    return [event for event in events if event is not None]


def test_events_are_parsed_and_pings_left_out():
    stream = (
        'id: 4711\nevent: task\ndata: {"identifier": "a", "settled": false}\n\n'
        ": ping\n\n"
        'id: 4712\nevent: response\ndata: {"endpoint": "web1",\ndata: "state": "running"}\n\n'
        'id: 4713\nevent: reset\ndata: {"reason": "events after 1 are no longer kept"}\n\n'
    )
    events = feed(stream)
    assert [(event.kind, event.id) for event in events] == [("task", "4711"), ("response", "4712"), ("reset", "4713")]
    assert events[1].data == {"endpoint": "web1", "state": "running"}, "data lines join with a newline"
    assert events[2].data["reason"].startswith("events after 1")


def test_data_that_is_not_json_is_kept_as_none_and_unknown_fields_are_ignored():
    (event,) = feed("retry: 100\nid: 9\nevent: task\ndata: {not json\n\n")
    assert (event.kind, event.id, event.data) == ("task", "9", None)


def test_a_frame_with_only_an_id_still_says_where_to_resume():
    assert [(event.kind, event.id) for event in feed("id: 77\n\n: ping\n\n")] == [(ID_ONLY, "77")]
    assert feed("id: 7\x008\n\n") == [], "an id holding NUL is ignored"


def test_a_line_ends_with_crlf_lf_or_a_cr_alone_even_split_across_reads():
    splitter = LineSplitter()
    assert splitter.feed(b"id: 1\revent: task\r") == [b"id: 1", b"event: task"]
    assert splitter.feed(b"\ndata: {}\r\n\r") == [b"data: {}", b""], "the LF after a CR read before is no line"
    assert splitter.feed(b"") == [] and splitter.feed(b"\nid: 2") == []
    assert splitter.feed(b"\n\n") == [b"id: 2", b""]
    parser = FrameParser()
    lines = LineSplitter().feed(b'id: 9\revent: task\rdata: {"settled": true}\r\r')
    (event,) = [event for line in lines if (event := parser.feed(line.decode())) is not None]
    assert (event.kind, event.id, event.data) == ("task", "9", {"settled": True})
