"""The bench run mode's handler module: returns at once, so a run measures tasker, not work."""

from __future__ import annotations

from typing import Any


def handle_task(task: Any, taskResponse: Any) -> Any:
    """Answer a small payload without doing anything."""
    taskResponse.payload = {"ok": 1}
    return taskResponse
