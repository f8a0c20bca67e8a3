"""Storage tests run on MariaDB (the session's test database) and on a SQLite file alike."""

from __future__ import annotations

import pytest

from tasker.config import DbConfig
from tasker.storage import open_database


@pytest.fixture(params=["mariadb", "sqlite"])
def db(request, tmp_path):
    """A database with tasker's tables: MariaDB's test database, or a new SQLite file."""
    if request.param == "mariadb":
        yield request.getfixturevalue("database")
        return
    sqlite = open_database(DbConfig(uri="sqlite:///%s" % (tmp_path / "tasker.db")))
    sqlite.upgrade_schema()
    yield sqlite
    sqlite.close()
