"""`GET /<type>/<identifier>/output?endpoint=E[&run=N]`: a run's output as plain text.

The output is read from the database one chunk at a time, off the IOLoop, and each chunk is
sent before the next is read: an output of 16 MiB is never whole in the API's memory.
"""

from __future__ import annotations

import logging
import re

from tornado.iostream import StreamClosedError

from tasker.api.base import JsonHandler
from tasker.api.validation import NAME_RULE, check_identifier
from tasker.config import NAME_PATTERN
from tasker.errors import InvalidTask, TaskerError, TaskNotFound

log = logging.getLogger(__name__)
TEXT_TYPE = "text/plain; charset=utf-8"
MAX_RUN = 2**31 - 1  # the largest run number the database holds
_DIGITS = re.compile(r"[0-9]{1,10}")


class TaskOutputHandler(JsonHandler):
    """The output of one endpoint's current run of a task, or of run N (current or earlier).

    `X-Tasker-Run` and `X-Tasker-Run-State` say which run it is and where it stands; a run that
    has not ended has nothing stored yet, so it answers an empty text.
    """

    async def get(self, identifier: str) -> None:
        try:
            check_identifier(identifier)
        except InvalidTask as exc:
            raise TaskNotFound("no %s task with identifier %r: %s" % (self.task_type, identifier[:60], exc)) from None
        endpoint, run = self._selection()
        found = await self.dispatcher.output(self.task_type, identifier, endpoint, run)
        self.set_header("Content-Type", TEXT_TYPE)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Tasker-Run", str(found.run))
        self.set_header("X-Tasker-Run-State", found.state.value)
        if found.size is not None:
            self.set_header("X-Tasker-Output-Size", str(found.size))
        for number, chunk_id in enumerate(found.chunks):
            try:
                text = await self.dispatcher.output_chunk(chunk_id)
            except TaskerError as exc:
                if number == 0:
                    raise  # nothing sent yet: answered as an error like any other
                log.warning("output of %s %s on %s cut short: %s", self.task_type, identifier, endpoint, exc)
                # The body has begun: only closing the connection before its end tells the
                # client it is incomplete (an error now would read as the output's end).
                self.request.connection.close()
                return
            self.write(text.encode("utf-8"))
            if number + 1 < len(found.chunks):  # one chunk alone goes with its Content-Length
                try:
                    await self.flush()
                except StreamClosedError:
                    return  # the client went away
        self.finish()

    def _selection(self) -> tuple[str, int | None]:
        """The endpoint and run the query names (no run: the current one)."""
        endpoint = self.get_query_argument("endpoint", None, strip=False)
        if endpoint is None:
            raise InvalidTask("endpoint is missing: ?endpoint=<name> says whose output")
        if not NAME_PATTERN.match(endpoint):
            raise InvalidTask("endpoint %r is not %s" % (endpoint[:60], NAME_RULE))
        run = self.get_query_argument("run", None, strip=False)
        if run is None:
            return endpoint, None
        if not _DIGITS.fullmatch(run) or not 1 <= int(run) <= MAX_RUN:
            raise InvalidTask("run must be a run number (an integer from 1 to %d), not %r" % (MAX_RUN, run[:20]))
        return endpoint, int(run)
