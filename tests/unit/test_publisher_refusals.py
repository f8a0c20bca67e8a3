"""The API's publisher after the broker refuses a message: the channel is replaced."""

from __future__ import annotations

import asyncio

import pika
import pytest

from tasker.config import MessageQueueConfig
from tasker.errors import BrokerUnavailable
from tasker.messaging.publisher import Publisher


class FakeChannel:
    """What `_on_confirm` looks at of a pika channel."""

    def __init__(self) -> None:
        self.is_open = True
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        self.is_open = False


class Frame:
    def __init__(self, method) -> None:
        self.method = method


def _publisher_with_two_pending(loop: asyncio.AbstractEventLoop) -> tuple[Publisher, FakeChannel, list]:
    publisher = Publisher(MessageQueueConfig())
    channel = FakeChannel()
    publisher._channel = channel
    futures = [loop.create_future(), loop.create_future()]
    publisher._pending = {1: futures[0], 2: futures[1]}
    return publisher, channel, futures


def test_a_refused_publish_fails_its_task_and_closes_the_channel_for_a_new_one():
    # On a RabbitMQ cluster, a channel opened while quorum queues elect their leaders may have
    # every later publish refused: the publisher must not keep using it.
    loop = asyncio.new_event_loop()
    try:
        publisher, channel, futures = _publisher_with_two_pending(loop)
        publisher._on_confirm(channel, Frame(pika.spec.Basic.Nack(delivery_tag=1)))
        with pytest.raises(BrokerUnavailable):
            futures[0].result()
        assert channel.closed == 1 and not futures[1].done()
    finally:
        loop.close()


def test_a_confirmed_publish_keeps_the_channel():
    loop = asyncio.new_event_loop()
    try:
        publisher, channel, futures = _publisher_with_two_pending(loop)
        publisher._on_confirm(channel, Frame(pika.spec.Basic.Ack(delivery_tag=2, multiple=True)))
        assert futures[0].result() is None and futures[1].result() is None
        assert channel.closed == 0
    finally:
        loop.close()
