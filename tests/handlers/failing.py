"""A handler module whose handler raises, configured for the `failing` task type in test mode."""

from __future__ import annotations


def handle_task(task, taskResponse):
    """Fail the way a buggy handler does."""
    raise RuntimeError("disk full on %s" % taskResponse.endpoint)
