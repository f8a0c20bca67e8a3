"""Names and arguments of tasker's exchanges and queues, shared by publisher, consumer and setup.

- One durable direct exchange, `<prefix>.tasks`. Each (task type, endpoint) has a durable
  queue, `<prefix>.<type>.<endpoint>`, bound to it with its own name as routing key. A task is
  published once, routed to its first endpoint's queue with the others in the `CC` header
  (RabbitMQ's sender-selected distribution): a queue gets only the tasks that name its endpoint.
- Messages not yet received expire at their run's delivery deadline (per-message expiration).
- A manager publishes its copies through an exchange of its endpoint's own, the durable direct
  exchange `<prefix>.<type>.<endpoint>` (named as its queue: exchanges and queues have names
  of their own). It is bound to that queue (routing key: the queue's name), where renewal
  copies of a held delivery go, and to the queue `<prefix>.dead-letter` (routing key: that
  name), where a message the manager cannot handle is set aside with the reason in its
  `x-tasker-reason` header. No right to publish into any other queue is needed.
- The endpoint queues' dead-letter exchange, `<prefix>.dead-letter` (fanout), has no binding:
  what expires in a queue is dropped, not kept.
- The policy `<prefix>-queue-expiry` deletes endpoint queues no consumer used for a while.
"""

from __future__ import annotations

import datetime as dt

REASON_HEADER = "x-tasker-reason"


def tasks_exchange(prefix: str) -> str:
    """The direct exchange every task is published to."""
    return "%s.tasks" % prefix


def queue_name(prefix: str, task_type: str, endpoint: str) -> str:
    """The queue of one endpoint for one task type (also its routing key)."""
    return "%s.%s.%s" % (prefix, task_type, endpoint)


def endpoint_exchange(prefix: str, task_type: str, endpoint: str) -> str:
    """The exchange an endpoint's manager publishes its renewal and set-aside copies to."""
    return queue_name(prefix, task_type, endpoint)


def dead_letter_name(prefix: str) -> str:
    """The queues' dead-letter exchange (unbound), and the queue where refused messages are kept."""
    return "%s.dead-letter" % prefix


def queue_arguments(prefix: str, queue_type: str = "classic") -> dict[str, str]:
    """Arguments every endpoint queue is declared with; publisher and consumer must agree.

    Classic queues carry no `x-queue-type`, so queues declared before the setting existed
    still match.
    """
    arguments = {"x-dead-letter-exchange": dead_letter_name(prefix)}
    if queue_type != "classic":
        arguments["x-queue-type"] = queue_type
    return arguments


def dead_letter_arguments(queue_type: str = "classic") -> dict[str, str]:
    """Arguments of the dead-letter queue: of the endpoint queues' type, so that on a cluster
    it is replicated too (a classic queue on a node that is down refuses every declaration)."""
    return {} if queue_type == "classic" else {"x-queue-type": queue_type}


def expiry_policy(prefix: str, seconds: float) -> tuple[str, str, dict[str, int]]:
    """The name, queue pattern and definition of the policy that deletes idle endpoint queues
    (every queue of the prefix but the dead-letter queue)."""
    pattern = r"^%s\.(?!dead-letter$)" % prefix.replace(".", r"\.")
    return "%s-queue-expiry" % prefix, pattern, {"expires": int(seconds * 1000)}


def expiration_ms(deadline: dt.datetime, now: dt.datetime) -> str:
    """The AMQP `expiration` of a message that must be received by `deadline` (at least 1 ms)."""
    return str(max(1, int((deadline - now).total_seconds() * 1000)))
