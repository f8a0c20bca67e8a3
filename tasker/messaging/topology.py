"""Names and arguments of tasker's exchanges and queues, shared by publisher and consumer.

One durable fanout exchange per task type, `<prefix>.<type>`; one durable queue per
(task type, endpoint), `<prefix>.<type>.<endpoint>`, bound to it; one dead-letter exchange and
queue, `<prefix>.dead-letter`, for messages that cannot be handled.
"""

from __future__ import annotations


def exchange_name(prefix: str, task_type: str) -> str:
    """The fanout exchange of a task type."""
    return "%s.%s" % (prefix, task_type)


def queue_name(prefix: str, task_type: str, endpoint: str) -> str:
    """The queue of one endpoint for one task type."""
    return "%s.%s.%s" % (prefix, task_type, endpoint)


def dead_letter_name(prefix: str) -> str:
    """The exchange and the queue where messages that cannot be handled are set aside."""
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
