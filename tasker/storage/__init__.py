"""Storage: the only package that imports SQLAlchemy. Tasks, task-responses, registrations."""

from tasker.storage.database import Database, open_database
from tasker.storage.limits import LimitStore
from tasker.storage.live import OutputSoFar, Progress
from tasker.storage.registrations import Heartbeat, Registration, RegistrationStore
from tasker.storage.responses import Arrival, Finish, Orphan, ResponseStore, Start
from tasker.storage.tasks import Created, Missed, NewTask, TaskStore

__all__ = [
    "Arrival",
    "Created",
    "Database",
    "Missed",
    "NewTask",
    "Orphan",
    "OutputSoFar",
    "Finish",
    "Heartbeat",
    "LimitStore",
    "Progress",
    "Registration",
    "RegistrationStore",
    "ResponseStore",
    "Start",
    "TaskStore",
    "open_database",
]
