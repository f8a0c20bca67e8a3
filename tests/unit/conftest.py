"""Fixtures the unit tests share: a database on SQLite, the manager's world around it, and a
real work horse."""

from __future__ import annotations

import pytest

from tasker.config import DbConfig
from tasker.manager.workhorse import WorkHorse
from tasker.storage import open_database
from tests.unit.manager_setup import Setup
from tests.unit.real_horse import GRACE, HANDLER


@pytest.fixture
def db(tmp_path):
    database = open_database(DbConfig(uri="sqlite:///%s" % (tmp_path / "tasker.db")))
    database.upgrade_schema()
    yield database
    database.close()


@pytest.fixture
def setup(db):
    world = Setup(db)
    yield world
    world.stop()


@pytest.fixture
def started() -> list[int]:
    """The process groups `on_start` reported, in order."""
    return []


@pytest.fixture
def horse(started):
    """A work horse with a persistent child, a short grace, and `on_start` into `started`."""
    horse = WorkHorse(HANDLER, {"wait": 0}, grace=GRACE, on_start=started.append)
    yield horse
    horse.close(kill=True)
