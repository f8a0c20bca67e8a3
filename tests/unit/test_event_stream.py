"""A stream's seam: what a client missed comes from the database, then the hub's events, in id
order and each once, whatever the hub does meanwhile; `reset` when that cannot be done."""

from __future__ import annotations

import asyncio

import pytest

from tasker.api import event_stream
from tasker.api.event_stream import EventStream
from tests.unit.event_fakes import Executor, FakeFeed, Sink, event, hub, until


def started(stream: EventStream, last_id: int | None) -> asyncio.Task:
    stream.open(last_id)
    return asyncio.ensure_future(stream.run())


async def ended(stream: EventStream, serving: asyncio.Task) -> None:
    stream.stop()
    await asyncio.wait_for(serving, 2)
    stream.close()


def test_a_stream_without_last_event_id_sends_what_the_hub_hands_over_after_it_opened():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        events = hub(feed, executor, position=5)
        sink = Sink()
        stream = EventStream(events, sink)
        serving = started(stream, None)
        events.publish(feed.store(event(6), event(7, "task")), 7)
        await until(lambda: sink.ids() == [6, 7])
        await ended(stream, serving)
        assert events.subscribers() == 0
        assert sink.frames() == [("response", 6), ("task", 7)]

    asyncio.run(scenario())


def test_a_client_back_gets_what_it_missed_then_what_the_hub_brings_each_once():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        feed.store(*(event(i) for i in range(1, 11)))
        events = hub(feed, executor, position=10)
        # While the stream reads what it missed, the hub reads and hands over 11 and 12.
        executor.during = lambda: events.position == 10 and events.publish(feed.store(event(11), event(12)), 12)
        sink = Sink()
        stream = EventStream(events, sink)
        serving = started(stream, 4)
        await until(lambda: events.position == 12 and sink.ids()[-1:] == [12])
        events.publish(feed.store(event(13)), 13)
        await until(lambda: sink.ids()[-1:] == [13])
        await ended(stream, serving)
        assert sink.ids() == list(range(5, 14))

    asyncio.run(scenario())


def test_a_client_far_behind_reads_in_windows_while_the_hub_moves_on(monkeypatch):
    monkeypatch.setattr(event_stream, "WINDOW", 3)
    monkeypatch.setattr(event_stream, "NEAR", 2)

    async def scenario():
        feed, executor = FakeFeed(), Executor()
        feed.store(*(event(i) for i in range(1, 21)))
        events = hub(feed, executor, position=20)

        def hub_moves_on():  # one event more at every read the stream makes, up to 30
            if events.position < 30:
                events.publish(feed.store(event(events.position + 1)), events.position + 1)

        executor.during = hub_moves_on
        sink = Sink()
        stream = EventStream(events, sink)
        serving = started(stream, 0)
        await until(lambda: events.position == 30 and sink.ids()[-1:] == [30])
        await ended(stream, serving)
        assert sink.ids() == list(range(1, 31))
        assert all(upto - after <= 3 for after, upto in feed.windows)

    asyncio.run(scenario())


def test_filters_hold_for_what_was_missed_and_for_what_comes():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        feed.store(event(1, identifier="a"), event(2, identifier="b"), event(3, task_type="backup", identifier="a"))
        events = hub(feed, executor, position=3)
        sink = Sink()
        stream = EventStream(events, sink, "worker", "a")
        serving = started(stream, 0)
        events.publish(feed.store(event(4, identifier="b"), event(5, identifier="a", kind="task")), 5)
        await until(lambda: sink.ids()[-1:] == [5])
        await ended(stream, serving)
        assert sink.ids() == [1, 5]

    asyncio.run(scenario())


def test_a_client_ahead_of_this_api_process_gets_no_event_twice():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        feed.store(*(event(i) for i in range(1, 13)))  # 11 and 12 stored, not read by this hub yet
        events = hub(feed, executor, position=10)
        sink = Sink()
        stream = EventStream(events, sink)
        serving = started(stream, 12)  # another API process handed it 12 already
        await until(lambda: stream.subscription is not None)
        events.publish(feed.store(event(13)), 13)
        events.publish([feed.rows[11], feed.rows[12], event(14)], 14)
        await until(lambda: sink.ids()[-1:] == [14])
        await ended(stream, serving)
        assert sink.frames() == [("response", 13), ("response", 14)]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("position", "last_id", "reason"),
    [
        (10, 3, "no longer kept"),  # events 4 and 5 are pruned
        (0, 3, "no longer kept"),  # the same, with a hub that has not read past the pruned ones
        (10, 50, "newer than every stored event"),  # a database that was reset since
    ],
)
def test_an_id_that_cannot_be_resumed_from_gets_reset_and_the_stream_goes_on(position, last_id, reason):
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        feed.store(*(event(i) for i in range(6, 11)))
        events = hub(feed, executor, position=position)
        sink = Sink()
        stream = EventStream(events, sink)
        serving = started(stream, last_id)
        await until(lambda: stream.subscription is not None)
        events.publish(feed.store(event(11)), 11)
        await until(lambda: sink.ids()[-1:] == [11])
        await ended(stream, serving)
        assert sink.frames() == [("reset", position), ("response", 11)]
        assert reason in sink.text

    asyncio.run(scenario())


def test_the_id_just_before_the_oldest_kept_is_resumed_without_reset():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        feed.store(*(event(i) for i in range(6, 11)))
        events = hub(feed, executor, position=10)
        sink = Sink()
        stream = EventStream(events, sink)
        serving = started(stream, 5)
        await until(lambda: sink.ids()[-1:] == [10])
        await ended(stream, serving)
        assert sink.ids() == [6, 7, 8, 9, 10]

    asyncio.run(scenario())


def test_a_client_that_goes_away_ends_its_stream_and_leaves_no_subscriber():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        events = hub(feed, executor, position=0)
        sink = Sink(gone_after=1)
        stream = EventStream(events, sink)
        serving = started(stream, None)
        events.publish(feed.store(event(1)), 1)
        await until(lambda: sink.ids() == [1])
        events.publish(feed.store(event(2)), 2)  # its send finds the client gone
        await asyncio.wait_for(serving, 2)
        stream.close()
        assert sink.ids() == [1] and events.subscribers() == 0

    asyncio.run(scenario())


def test_a_stream_that_falls_too_far_behind_is_cut_off_and_holds_nothing():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        events = hub(feed, executor, position=0)
        sink = Sink(held=True)  # a client that reads nothing: the first send never completes
        stream = EventStream(events, sink, queue_limit=3)
        serving = started(stream, None)
        for number in range(1, 6):
            events.publish(feed.store(event(number)), number)
            await asyncio.sleep(0)
        await asyncio.wait_for(serving, 2)
        stream.close()
        assert sink.aborted and stream.overflowed and events.subscribers() == 0
        assert stream.subscription is not None and stream.subscription.queued() == 0

    asyncio.run(scenario())


def test_a_quiet_stream_gets_a_ping_and_a_stopping_hub_ends_it():
    async def scenario():
        feed, executor = FakeFeed(), Executor()
        events = hub(feed, executor, position=0)
        sink = Sink()
        stream = EventStream(events, sink, ping_seconds=0.05)
        serving = started(stream, None)
        await until(lambda: ": ping\n\n" in sink.text)
        await events.stop(timeout=0)
        await asyncio.wait_for(serving, 2)
        stream.close()
        assert events.subscribers() == 0

    asyncio.run(scenario())
