"""tasker's own exceptions: every library error is translated into one of these at its door."""

from __future__ import annotations


class TaskerError(Exception):
    """Base class of every error tasker raises on purpose."""


class ConfigError(TaskerError):
    """The configuration is missing, malformed, or names something that does not exist."""


class StorageUnavailable(TaskerError):
    """The database cannot be reached or refused the statement for a transient reason."""


class LockConflict(StorageUnavailable):
    """The database broke a deadlock or a lock wait by rolling this transaction back."""


class StorageError(TaskerError):
    """The database refused a statement for good: the data does not fit, or the schema is wrong."""


class DuplicateRow(StorageError):
    """A row with that unique key exists already."""


class BrokerUnavailable(TaskerError):
    """The message broker cannot be reached or did not confirm a message."""


class QueueRefused(BrokerUnavailable):
    """The broker refused to declare a task's queue: that task waits, the others go on."""


class TaskNotFound(TaskerError):
    """No task of that type has that identifier."""


class RunNotFound(TaskNotFound):
    """The task has no such endpoint, or that endpoint had no such run."""


class EndpointNotFound(TaskerError):
    """No endpoint of that name is registered for that task type."""


class EndpointAlive(TaskerError):
    """The endpoint's manager is alive (or still consumes its queue): it is not deregistered."""


class TaskConflict(TaskerError):
    """A task with that identifier exists already with different content."""


class InvalidTask(TaskerError):
    """A task request or message does not have the shape tasker expects."""


class HandlerModuleError(TaskerError):
    """The handler module of a task type cannot be loaded or lacks `handle_task`."""


class SetupError(TaskerError):
    """Creating the database schema or the broker's vhost and user failed."""


class WorkHorseError(TaskerError):
    """A handler's child process cannot be started, or the work horse is closed."""


class StatementTooLarge(StorageError):
    """The database refused a statement larger than it accepts (MySQL's max_allowed_packet)."""

    def __init__(self, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit  # the database's limit in bytes, when known


class RequestTooLarge(TaskerError):
    """A request body over `api.max_body_size`."""


class Overloaded(TaskerError):
    """This API process has as many waiting requests (or event streams) open as it allows."""
