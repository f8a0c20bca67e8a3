"""The event hub: one reader, events handed to the subscribers whose filters they match, bounded
queues, waiters woken by a settle, limits on streams and waiters; and `?wait`'s rules."""

from __future__ import annotations

import asyncio
import re

import pytest

from tasker.api import event_hub
from tasker.api.event_listeners import Subscription
from tasker.api.waiting import parse_wait, read_when_settled
from tasker.config import load_config
from tasker.errors import ConfigError, InvalidTask, Overloaded
from tasker.status import ResponseState
from tests.unit.event_fakes import Executor, FakeFeed, event, hub, until


def test_each_event_goes_to_the_subscribers_whose_filters_it_matches():
    async def scenario():
        events = hub(FakeFeed(), Executor())
        keys = [(None, None), ("worker", None), (None, "t1"), ("worker", "t1"), ("backup", None), ("worker", "t2")]
        subscriptions = {key: Subscription(*key) for key in keys}
        for subscription in subscriptions.values():
            events.subscribe(subscription)
        events.publish([event(1), event(2, identifier="t2"), event(3, task_type="backup")], 3)
        got = {key: [e.id for e in await s.next_batch(0)] for key, s in subscriptions.items()}
        assert got == {
            (None, None): [1, 2, 3],
            ("worker", None): [1, 2],
            (None, "t1"): [1, 3],
            ("worker", "t1"): [1],
            ("backup", None): [3],
            ("worker", "t2"): [2],
        }
        assert events.position == 3
        for subscription in subscriptions.values():
            events.unsubscribe(subscription)
            events.unsubscribe(subscription)  # again: nothing happens
        assert events.subscribers() == 0

    asyncio.run(scenario())


def test_a_subscription_that_overflows_is_emptied_told_once_and_takes_nothing_more():
    async def scenario():
        events = hub(FakeFeed(), Executor())
        told = []
        slow, other = Subscription(None, None, 2, lambda: told.append(1)), Subscription(None, None, 10)
        events.subscribe(slow)
        events.subscribe(other)
        events.publish([event(i) for i in range(1, 5)], 4)
        events.publish([event(5)], 5)
        assert slow.overflowed and slow.queued() == 0 and told == [1]
        assert await slow.next_batch(1) == []
        assert [e.id for e in await other.next_batch(0)] == [1, 2, 3, 4, 5]

    asyncio.run(scenario())


def test_an_events_text_is_rendered_once_for_every_stream_that_sends_it():
    events, rendered = hub(FakeFeed(), Executor()), []

    def render(item):
        rendered.append(item.id)
        return "text of %d" % item.id

    first = event(1)
    texts = [events.rendered(item, render) for item in (first, first, event(2), first)]
    assert texts == ["text of 1", "text of 1", "text of 2", "text of 1"] and rendered == [1, 2]


def test_a_waiter_wakes_only_when_its_task_settles():
    async def scenario():
        events = hub(FakeFeed(), Executor())
        with events.waiter("worker", "t1") as waiter:
            events.publish(
                [event(1), event(2, "task", settled=False), event(3, "task", identifier="t2", settled=True)], 3
            )
            assert not await waiter.wait(0.01)
            events.publish([event(4, "task", settled=True)], 4)
            assert await waiter.wait(0.01)
        assert (events.waiters, events.subscribers()) == (0, 0)

    asyncio.run(scenario())


def test_streams_and_waiters_beyond_their_limits_are_refused_until_one_ends():
    async def scenario():
        events = hub(FakeFeed(), Executor(), max_streams=1, max_waiters=1)
        with events.stream_slot():
            with pytest.raises(Overloaded, match="api.max_event_streams"):
                with events.stream_slot():
                    pass
            with events.waiter("worker", "t1"):
                with pytest.raises(Overloaded, match="api.max_waiters"):
                    with events.waiter("worker", "t2"):
                        pass
                assert events.counts() == {"waiters": 1, "event_streams": 1}
        with events.stream_slot(), events.waiter("worker", "t1"):
            pass
        assert events.counts() == {"waiters": 0, "event_streams": 0}

    asyncio.run(scenario())


def test_the_reader_starts_where_the_feed_says_and_hands_over_what_comes_after(monkeypatch):
    monkeypatch.setattr(event_hub, "READ_BATCH", 2)  # batches of 2: a full one is followed at once

    async def scenario():
        feed, executor = FakeFeed(), Executor()
        feed.store(*(event(i) for i in range(1, 6)))  # history: never read
        feed.start_at, feed.fail_next = 5, 1  # and the database is away at first
        events = hub(feed, executor, position=None)
        events.start()
        assert await events.wait_ready(2) == 5
        subscription = Subscription(None, None)
        events.subscribe(subscription)
        feed.store(*(event(i) for i in range(6, 11)))
        await until(lambda: events.position == 10)
        assert [e.id for e in await subscription.next_batch(0)] == [6, 7, 8, 9, 10]
        await events.stop(timeout=0)
        assert subscription.ended

    asyncio.run(scenario())


def test_a_stopping_hub_ends_its_waiters_and_waits_for_them_to_answer():
    async def scenario():
        events = hub(FakeFeed(), Executor())
        answered = []

        async def waiting():
            with events.waiter("worker", "t1") as waiter:
                await waiter.wait(30)
                await asyncio.sleep(0.05)  # reads the task once more
                answered.append(waiter.ended)

        task = asyncio.ensure_future(waiting())
        await until(lambda: events.waiters == 1)
        await events.stop(timeout=2)
        assert answered == [True] and events.waiters == 0
        await task

    asyncio.run(scenario())


@pytest.mark.parametrize(("text", "seconds"), [(None, None), ("1", 1), ("60", 60), ("07", 7)])
def test_wait_takes_whole_seconds_from_1_to_60(text, seconds):
    assert parse_wait(text) == seconds


@pytest.mark.parametrize("text", ["0", "61", "-1", "1.5", "abc", "", " 5", "1e1", "100"])
def test_any_other_wait_is_refused(text):
    with pytest.raises(InvalidTask, match="from 1 to 60"):
        parse_wait(text)


class Reads:
    """A task's reads: its response states, one list a read (the last one repeats)."""

    def __init__(self, *states: list[str]) -> None:
        self.states = list(states)
        self.count = 0

    async def __call__(self):
        self.count += 1
        states = self.states[min(self.count, len(self.states)) - 1]
        return "task", [type("Response", (), {"state": ResponseState(s)})() for s in states]


def test_a_waiting_read_answers_at_once_when_settled_when_woken_or_after_its_seconds():
    async def scenario():
        events = hub(FakeFeed(), Executor())
        with events.waiter("worker", "t1") as waiter:
            settled = Reads(["succeeded"])
            assert (await read_when_settled(waiter, settled, 5))[0] == "task" and settled.count == 1

            woken = Reads(["running"], ["succeeded"])
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, events.publish, [event(1, "task", settled=True)], 1)
            started = loop.time()
            await read_when_settled(waiter, woken, 5)
            assert woken.count == 2 and loop.time() - started < 1

            never = Reads(["queued"])
            started = loop.time()
            await read_when_settled(waiter, never, 0.2)
            assert never.count == 2 and 0.2 <= loop.time() - started < 1, "read again when the time is up"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("event_retention: 30", "api.event_retention must be 0 (keep every event) or at least 60 seconds"),
        ("max_waiters: -1", "api.max_waiters must be 0 or more"),
        ("max_event_streams: -1", "api.max_event_streams must be 0 or more"),
    ],
)
def test_event_limits_and_retention_are_checked_when_the_config_loads(tmp_path, line, says):
    (tmp_path / "x.config.yaml").write_text(CONFIG + "api:\n  %s\n" % line)
    with pytest.raises(ConfigError, match=re.escape(says)):
        load_config("x", tmp_path)


def test_event_limits_and_retention_have_their_defaults(tmp_path):
    (tmp_path / "x.config.yaml").write_text(CONFIG + "api:\n  event_retention: 0\n")
    api = load_config("x", tmp_path).api
    assert (api.max_waiters, api.max_event_streams, api.event_retention) == (1000, 100, 0)


CONFIG = """
task_types: [worker]
manager:
  db:
    uri: "sqlite://"
"""
