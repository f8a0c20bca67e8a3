"""Removing an endpoint from the broker (deregistration): its queue with what it holds, and the
exchange its manager copies messages through.

Each call goes on a channel of its own, opened on the publisher's connection for that call:
the broker answers a refused call by closing the channel it came on, and the channels that
publish and declare tasks must not be the ones it closes. A passive declare first counts the
queue's consumers: a queue some manager still consumes is not deleted, whatever its
heartbeats say (a manager cut off from the database, or frozen before the broker noticed).

Rights: the passive `queue.declare`, `queue.delete` and `exchange.delete` of
`P.<type>.<endpoint>` take configure on that name, which the API's user has
(`tasker.messaging.rights.api_rights`); a broker that refuses them says so in the error.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from tasker.errors import BrokerUnavailable, EndpointAlive, QueueRefused
from tasker.messaging.topology import endpoint_exchange, queue_name

log = logging.getLogger(__name__)
NOT_FOUND, ACCESS_REFUSED = 404, 403
# Channel close codes that refuse what was asked, not say the broker is gone.
_REFUSALS = {403: "access refused", 405: "resource locked", 406: "precondition failed"}


async def remove_endpoint(
    connection: Any, prefix: str, task_type: str, endpoint: str, timeout: float, unless_consumed: bool = True
) -> None:
    """Delete the queue of an endpoint for a task type and its exchange (neither existing is no
    error); with `unless_consumed`, EndpointAlive and nothing deleted while the queue has a
    consumer. BrokerUnavailable (QueueRefused for a refusal) when the broker does not do it."""
    queue = queue_name(prefix, task_type, endpoint)
    if unless_consumed:
        declared = await _call(connection, timeout, "count the consumers of queue %s" % queue, _passive(queue))
        if declared is not None and declared.method.consumer_count:
            raise EndpointAlive(
                "endpoint %s of %s: its queue still has %d consumer(s), so its manager is connected to the broker; "
                "stop it first" % (endpoint, task_type, declared.method.consumer_count)
            )
    await _call(connection, timeout, "delete queue %s" % queue, lambda ch, cb: ch.queue_delete(queue, callback=cb))
    exchange = endpoint_exchange(prefix, task_type, endpoint)
    what = "delete exchange %s" % exchange
    await _call(connection, timeout, what, lambda ch, cb: ch.exchange_delete(exchange, callback=cb))
    log.info("endpoint %s of %s: queue and exchange %s deleted", endpoint, task_type, queue)


def _passive(queue: str) -> Callable[[Any, Callable], None]:
    return lambda channel, answered: channel.queue_declare(queue, passive=True, callback=answered)


async def _call(connection: Any, timeout: float, what: str, call: Callable[[Any, Callable], None]) -> Any:
    """Open a channel, make one call on it and close it: the broker's answer, or None when the
    broker has no such queue or exchange."""
    if connection is None or not connection.is_open:
        raise BrokerUnavailable("no RabbitMQ connection: cannot %s" % what)
    answered = asyncio.get_running_loop().create_future()

    def settle(result: Any = None, exc: Exception | None = None) -> None:
        if answered.done():
            return
        if exc is None:
            answered.set_result(result)
        else:
            answered.set_exception(exc)

    def on_open(channel: Any) -> None:
        if answered.done():  # given up on meanwhile
            channel.close()
            return
        channel.add_on_close_callback(on_close)

        def on_answer(frame: Any) -> None:
            settle(frame)
            if channel.is_open:
                channel.close()

        try:
            call(channel, on_answer)
        except Exception as exc:  # pika raises several types when the channel just closed
            settle(exc=BrokerUnavailable("cannot %s: %s" % (what, exc)))
            if channel.is_open:
                channel.close()

    def on_close(channel: Any, reason: Any) -> None:
        code = getattr(reason, "reply_code", None)
        if code == NOT_FOUND:
            settle(None)
        elif code in _REFUSALS:
            why = "the broker refused to %s (%s): %s" % (what, _REFUSALS[code], getattr(reason, "reply_text", reason))
            if code == ACCESS_REFUSED:
                why += "; the broker user needs the configure right on it"
            settle(exc=QueueRefused(why))
        else:
            settle(exc=BrokerUnavailable("cannot %s: %s" % (what, reason)))

    try:
        connection.channel(on_open_callback=on_open)
        return await asyncio.wait_for(asyncio.shield(answered), timeout)
    except asyncio.TimeoutError as exc:
        answered.cancel()  # a channel that opens late makes no call
        raise BrokerUnavailable("the broker did not answer within %ss: cannot %s" % (timeout, what)) from exc
    except BrokerUnavailable:
        raise
    except Exception as exc:  # the connection closed under the call
        raise BrokerUnavailable("cannot %s: %s" % (what, exc)) from exc
