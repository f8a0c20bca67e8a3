"""Extensions of the lifecycle, one feature a file; `manager_extensions` and `api_extensions`
list what each process runs with."""

from __future__ import annotations

from tasker.config import Config
from tasker.extensions.time_limit import TimeLimit
from tasker.hooks import Extension


def manager_extensions(config: Config) -> list[Extension]:
    """The extensions of a manager process."""
    return [TimeLimit(config.manager.execution_timeout)]


def api_extensions(config: Config) -> list[Extension]:
    """The extensions of an API process."""
    return []
