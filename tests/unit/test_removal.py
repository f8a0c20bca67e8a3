"""Removing an endpoint from the broker, against a connection that answers as RabbitMQ does: a
queue with a consumer is kept, a missing queue or exchange is no error, a refusal says which
right is missing, and every call has a channel of its own."""

from __future__ import annotations

import asyncio
import types

import pytest

from tasker.errors import BrokerUnavailable, EndpointAlive, QueueRefused
from tasker.messaging.removal import remove_endpoint

QUEUE = "tasker.worker.e1"


def closed(code: int, text: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(reply_code=code, reply_text=text)


class Connection:
    """Opens channels whose calls the broker answers from `answers`: a method name -> a frame's
    method fields, or a close (reply code and text) of the channel."""

    is_open = True

    def __init__(self, **answers) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []  # (method, channel number)
        self.channels = 0

    def channel(self, on_open_callback) -> None:
        self.channels += 1
        asyncio.get_running_loop().call_soon(on_open_callback, Channel(self, self.channels))


class Channel:
    def __init__(self, connection: Connection, number: int) -> None:
        self.connection, self.number, self.is_open, self.on_close = connection, number, True, []

    def add_on_close_callback(self, callback) -> None:
        self.on_close.append(callback)

    def close(self, reason=None) -> None:
        if self.is_open:
            self.is_open = False
            for callback in self.on_close:
                asyncio.get_running_loop().call_soon(callback, self, reason or closed(200, "Normal shutdown"))

    def _answer(self, method: str, callback) -> None:
        self.connection.calls.append((method, self.number))
        answer = self.connection.answers.get(method, {})
        if isinstance(answer, types.SimpleNamespace):
            self.close(answer)
        else:
            frame = types.SimpleNamespace(method=types.SimpleNamespace(**answer))
            asyncio.get_running_loop().call_soon(callback, frame)

    def queue_declare(self, queue, passive, callback) -> None:
        assert queue == QUEUE and passive
        self._answer("queue_declare", callback)

    def queue_delete(self, queue, callback) -> None:
        assert queue == QUEUE
        self._answer("queue_delete", callback)

    def exchange_delete(self, exchange, callback) -> None:
        assert exchange == QUEUE  # the endpoint's exchange is named as its queue
        self._answer("exchange_delete", callback)


def remove(connection: Connection, unless_consumed: bool = True) -> None:
    asyncio.run(remove_endpoint(connection, "tasker", "worker", "e1", 1.0, unless_consumed))


def test_the_queue_and_exchange_of_an_unused_endpoint_are_deleted_each_on_a_channel_of_its_own():
    connection = Connection(queue_declare={"consumer_count": 0, "message_count": 4})
    remove(connection)
    assert connection.calls == [("queue_declare", 1), ("queue_delete", 2), ("exchange_delete", 3)]


def test_a_queue_with_a_consumer_is_kept_whatever_the_heartbeats_say():
    connection = Connection(queue_declare={"consumer_count": 1, "message_count": 0})
    with pytest.raises(EndpointAlive, match="its queue still has 1 consumer"):
        remove(connection)
    assert connection.calls == [("queue_declare", 1)]
    remove(connection, unless_consumed=False)  # bin/initialize --deregister does not ask
    assert [method for method, _ in connection.calls[1:]] == ["queue_delete", "exchange_delete"]


def test_a_queue_or_exchange_that_is_gone_already_is_no_error():
    missing = closed(404, "NOT_FOUND - no queue 'tasker.worker.e1' in vhost 'tasker'")
    connection = Connection(queue_declare=missing, queue_delete=missing, exchange_delete=missing)
    remove(connection)
    assert [method for method, _ in connection.calls] == ["queue_declare", "queue_delete", "exchange_delete"]


def test_a_refusal_of_the_broker_says_which_right_the_user_lacks():
    refused = closed(403, "ACCESS_REFUSED - access to queue 'tasker.worker.e1' refused for user 'api'")
    connection = Connection(queue_declare={"consumer_count": 0}, queue_delete=refused)
    with pytest.raises(QueueRefused, match=r"refused to delete queue tasker\.worker\.e1 \(access refused\).*configure"):
        remove(connection)
    assert [method for method, _ in connection.calls] == ["queue_declare", "queue_delete"], "the exchange is kept"


def test_no_connection_is_a_broker_unavailable():
    connection = Connection()
    connection.is_open = False
    with pytest.raises(BrokerUnavailable, match="no RabbitMQ connection"):
        remove(connection)
