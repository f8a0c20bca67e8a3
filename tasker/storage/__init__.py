"""Storage: the only package that imports SQLAlchemy. Tasks, task-responses, registrations."""

from tasker.storage.database import Database, open_database
from tasker.storage.responses import Receipt, ResponseStore, Result
from tasker.storage.tasks import TaskStore

__all__ = ["Database", "open_database", "Receipt", "ResponseStore", "Result", "TaskStore"]
