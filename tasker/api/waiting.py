"""`GET /<type>/<identifier>?wait=S`: the task as soon as it is settled, or after S seconds.

The request subscribes to the event hub before it reads the task, so that a settle committed
after that read wakes it: a `task` event of the task saying `settled`. Whatever woke it (or the
end of the S seconds), it reads the task again from the database and answers that, with the
same body as without `wait`. A task that was retried meanwhile is not settled on that read: the
request waits on for the rest of its S seconds.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Awaitable, Callable

from tasker.api.event_listeners import Waiter
from tasker.errors import InvalidTask
from tasker.lifecycle import is_settled
from tasker.storage.reads import Read

MIN_WAIT, MAX_WAIT = 1, 60
_SECONDS = re.compile(r"[0-9]{1,2}")


def parse_wait(text: str | None) -> int | None:
    """The `wait` query argument in seconds (None when not given); InvalidTask when it is not a
    whole number from 1 to 60."""
    if text is None:
        return None
    if not _SECONDS.fullmatch(text) or not MIN_WAIT <= int(text) <= MAX_WAIT:
        rule = "wait must be a whole number of seconds from %d to %d, not %r"
        raise InvalidTask(rule % (MIN_WAIT, MAX_WAIT, text[:20]))
    return int(text)


async def read_when_settled(waiter: Waiter, read: Callable[[], Awaitable[Read]], seconds: float) -> Read:
    """`read()` the task until it is settled, again each time `waiter` is woken, and once more
    when `seconds` have passed (or the waiter ended: the API stops, the client went away)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    task, responses = await read()
    while not _settled(responses) and not waiter.ended:
        left = deadline - loop.time()
        if left <= 0:
            break
        woken = await waiter.wait(left)
        task, responses = await read()
        if not woken:
            break
    return task, responses


def _settled(responses: list[Any]) -> bool:
    return is_settled([response.state for response in responses])


class WaitingRead:
    """Mixed into the request handler of `GET /<type>/<identifier>` (before its base): `read_task`
    waits when `?wait=S` asks it to, and a client that goes away ends its wait at once."""

    _waiter: Waiter | None = None

    async def read_task(self: Any, identifier: str) -> Read:
        """The task and its responses, once settled or after `wait` seconds if asked."""
        seconds = parse_wait(self.get_query_argument("wait", None))
        if seconds is None:
            return await self.dispatcher.read(self.task_type, identifier)
        with self.settings["event_hub"].waiter(self.task_type, identifier) as self._waiter:
            return await read_when_settled(
                self._waiter, lambda: self.dispatcher.read(self.task_type, identifier), seconds
            )

    def on_connection_close(self: Any) -> None:
        super().on_connection_close()  # type: ignore[misc]
        if self._waiter is not None:
            self._waiter.end()
