"""Following a task: events patch the view, a GET settles it, polling stands in for the stream."""

from __future__ import annotations

import copy
import queue

import pytest

from tasker.client import follow
from tasker.client.errors import Unreachable
from tasker.client.follow import Follower


def task_view(state: str, progress: int | None = None) -> dict:
    settled = state in ("succeeded", "failed")
    task = {"type": "deploy", "identifier": "rel-42", "status": "DONE" if settled else "SENT", "settled": settled}
    response = {"endpoint": "web1", "state": state, "run": 1, "progress": progress, "attempts": 1}
    return {"task": task, "taskResponseList": [response]}


class FakeStream:
    """An open `/events` answer: lines as the test puts them; b"" ends it."""

    fp = None

    def __init__(self) -> None:
        self.lines: queue.Queue[bytes] = queue.Queue()

    def event(self, event_id: int, kind: str, data: str) -> None:
        for line in ("id: %d" % event_id, "event: %s" % kind, "data: %s" % data, ""):
            self.lines.put(line.encode() + b"\n")

    def read1(self, size: int) -> bytes:
        return self.lines.get(timeout=10)

    def close(self) -> None:
        pass


class FakeClient:
    """Answers GETs from `views` (the last one again and again); streams from `streams`."""

    def __init__(self, views: list[dict], streams: list) -> None:
        self.views, self.streams = views, streams
        self.gets: list[int | None] = []
        self.opened: list[str | None] = []

    def task(self, task_type: str, identifier: str, wait: int | None = None) -> dict:
        self.gets.append(wait)
        answer = self.views[0] if len(self.views) == 1 else self.views.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return copy.deepcopy(answer)  # a new answer each time, as over the wire

    def events(self, query: dict, last_event_id: str | None, timeout: float):
        self.opened.append(last_event_id)
        stream = self.streams.pop(0)
        if isinstance(stream, Exception):
            raise stream
        return stream


def test_events_show_at_once_and_the_settled_task_event_brings_the_final_get():
    stream = FakeStream()
    client = FakeClient([task_view("running", 0)], [stream])
    follower = Follower(client, "deploy", "rel-42")
    views = follower.views()
    assert next(views)["taskResponseList"][0]["progress"] == 0
    stream.event(5, "response", '{"endpoint": "web1", "run": 1, "state": "running", "progress": 40}')
    assert next(views)["taskResponseList"][0]["progress"] == 40, "shown before any GET"
    client.views[:] = [task_view("succeeded", 100)]
    stream.event(6, "task", '{"settled": true, "status": "DONE"}')
    assert list(views)[-1]["task"]["settled"]
    assert client.opened == [None] and set(client.gets) == {None}, "no polling"
    assert follower.last_event_id == "6"


def test_a_stream_that_cannot_be_opened_is_stood_in_for_by_polling():
    client = FakeClient([task_view("running", 0), task_view("running", 50), task_view("failed")], [])
    client.streams.append(Unreachable("the API could not answer: too many streams (HTTP 503)"))
    follower = Follower(client, "deploy", "rel-42")
    views = list(follower.views())
    assert [v["taskResponseList"][0]["state"] for v in views] == ["running", "running", "failed"]
    assert client.gets == [None, follow.POLL_WAIT, follow.POLL_WAIT]
    assert "polling" in follower.notice


def test_a_broken_stream_is_opened_again_from_the_last_event_it_gave(monkeypatch):
    monkeypatch.setattr(follow, "REOPEN_AFTER", 0)
    first, second = FakeStream(), FakeStream()
    first.event(7, "response", '{"endpoint": "web1", "run": 1, "state": "running", "progress": 10}')
    first.lines.put(b"")  # the API went away
    client = FakeClient([task_view("running", 0)], [first, second])
    follower = Follower(client, "deploy", "rel-42")
    views = follower.views()
    progress = [next(views)["taskResponseList"][0]["progress"] for _ in range(4)]
    assert progress == [0, 10, 0, 0], "the event, a poll, then the GET after the stream is back"
    client.views[:] = [task_view("succeeded")]
    rest = list(views)
    assert rest[-1]["task"]["settled"]
    assert client.opened == [None, "7"] and follow.POLL_WAIT in client.gets


class FakeTime:
    """A clock that moves only when the follower sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_an_api_out_of_reach_while_following_is_tried_again_then_given_up():
    time = FakeTime()
    views = [task_view("running"), Unreachable("refused"), Unreachable("refused"), task_view("succeeded")]
    client = FakeClient(views, [Unreachable("no stream")])
    follower = Follower(client, "deploy", "rel-42", clock=time.clock, sleep=time.sleep)
    assert list(follower.views())[-1]["task"]["settled"] and time.sleeps == [0.5, 1.0]

    client = FakeClient([task_view("running"), Unreachable("refused")], [Unreachable("no stream")] * 20)
    follower = Follower(client, "deploy", "rel-42", clock=time.clock, sleep=time.sleep)
    with pytest.raises(Unreachable, match="refused"):
        list(follower.views())
    assert sum(time.sleeps[2:]) >= follow.GIVE_UP_AFTER


def test_an_api_out_of_reach_at_the_first_get_is_an_error_at_once():
    time = FakeTime()
    client = FakeClient([Unreachable("refused"), task_view("succeeded")], [Unreachable("refused")])
    follower = Follower(client, "deploy", "rel-42", clock=time.clock, sleep=time.sleep)
    with pytest.raises(Unreachable, match="refused"):
        list(follower.views())
    assert time.sleeps == [] and client.gets == [None]


def test_polls_keep_their_own_pace_when_the_server_answers_wait_at_once():
    time = FakeTime()
    client = FakeClient([task_view("running")] * 8 + [task_view("succeeded")], [Unreachable("no stream")] * 20)
    asked_at: list[float] = []
    answer = client.task

    def task(task_type: str, identifier: str, wait: int | None = None) -> dict:
        asked_at.append(time.now)
        return answer(task_type, identifier, wait)

    client.task = task
    follower = Follower(client, "deploy", "rel-42", clock=time.clock, sleep=time.sleep)
    assert list(follower.views())[-1]["task"]["settled"]
    polls = [at for at, wait in zip(asked_at, client.gets, strict=True) if wait == follow.POLL_WAIT]
    assert len(polls) == 8
    gaps = [later - earlier for earlier, later in zip(polls, polls[1:], strict=False)]
    assert min(gaps) >= follow.POLL_EVERY, gaps


def test_an_id_only_frame_moves_the_id_the_stream_is_opened_again_from(monkeypatch):
    monkeypatch.setattr(follow, "REOPEN_AFTER", 0)
    first, second = FakeStream(), FakeStream()
    first.lines.put(b"id: 41\n\n")
    first.lines.put(b"")
    client = FakeClient([task_view("running", 0)], [first, second])
    follower = Follower(client, "deploy", "rel-42")
    views = follower.views()
    next(views), next(views)  # the first GET, then a poll once the stream ended
    client.views[:] = [task_view("succeeded")]
    assert list(views)[-1]["task"]["settled"]
    assert client.opened == [None, "41"]
