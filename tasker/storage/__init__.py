"""Storage: the only package that imports SQLAlchemy. Tasks, task-responses, registrations."""

from tasker.storage.database import Database, open_database
from tasker.storage.limits import LimitStore
from tasker.storage.responses import Arrival, Finish, Orphan, Progress, ResponseStore, Start
from tasker.storage.tasks import Created, Missed, NewTask, TaskStore

__all__ = [
    "Arrival",
    "Created",
    "Database",
    "Missed",
    "NewTask",
    "Orphan",
    "Finish",
    "LimitStore",
    "Progress",
    "ResponseStore",
    "Start",
    "TaskStore",
    "open_database",
]
