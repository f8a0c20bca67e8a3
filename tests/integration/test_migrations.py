"""The migration to runs and response states keeps what an existing database holds."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import text

from tasker.config import DbConfig
from tasker.storage import TaskStore, open_database

pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture(params=["mariadb", "sqlite"])
def old_db(request, tmp_path):
    """A database at the first schema revision, dropped afterwards."""
    if request.param == "mariadb":
        request.getfixturevalue("services")
        uri = "mysql+pymysql://root@127.0.0.1:3306/tasker_migration_test"
    else:
        uri = "sqlite:///%s" % (tmp_path / "old.db")
    db = open_database(DbConfig(uri=uri))
    db.upgrade_schema(reset=True, revision="0001")
    yield db
    db.upgrade_schema(reset=True, revision="0001")
    db.close()


def add_task(connection, task_id, status, endpoints, checked):
    connection.execute(
        text(
            "INSERT INTO task (id, identifier, type, payload, endpoints, status, start_time, last_modified_time,"
            " deadline, receipt_checked, claim_until) VALUES (:id, :ident, 'worker', '1', :endpoints, :status,"
            " :t, :t, :t, :checked, NULL)"
        ),
        {
            "id": task_id,
            "ident": "t%d" % task_id,
            "endpoints": json.dumps(endpoints),
            "status": status,
            "t": T0,
            "checked": checked,
        },
    )


def add_response(connection, task_id, endpoint, status, errnr, attempts=1):
    connection.execute(
        text(
            "INSERT INTO task_response (task_id, endpoint, status, errnr, errmsg, payload, attempts, start_time,"
            " last_modified_time) VALUES (:task_id, :endpoint, :status, :errnr, NULL, 'null', :attempts, :t, :t)"
        ),
        {"task_id": task_id, "endpoint": endpoint, "status": status, "errnr": errnr, "attempts": attempts, "t": T0},
    )


def test_existing_rows_get_their_state_and_every_endpoint_gets_a_response(old_db):
    with old_db.connection() as connection:
        add_task(connection, 1, "DONE", ["e1", "e2"], True)
        add_response(connection, 1, "e1", 1, 0)
        add_response(connection, 1, "e2", 1, 32, attempts=2)
        add_task(connection, 2, "INCOMPLETE", ["e1", "e2"], True)
        add_response(connection, 2, "e1", 0, 0)
        add_task(connection, 3, "SENT", ["e1", "e2"], False)
    old_db.upgrade_schema()
    tasks = TaskStore(old_db)

    def read(identifier):
        task, responses = tasks.get("worker", identifier)
        return task.status.value, [(r.endpoint, r.state.value, r.attempts, r.run, r.deadline) for r in responses]

    assert read("t1") == ("DONE", [("e1", "succeeded", 1, 1, T0), ("e2", "failed", 2, 1, T0)])
    assert read("t2") == ("INCOMPLETE", [("e1", "received", 1, 1, T0), ("e2", "missing", 0, 1, T0)])
    assert read("t3") == ("SENT", [("e1", "queued", 0, 1, T0), ("e2", "queued", 0, 1, T0)])


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_the_migrations_build_the_tables_the_models_describe(request, tmp_path, backend):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tasker.storage.models import Base

    if backend == "mariadb":
        request.getfixturevalue("services")
        uri = "mysql+pymysql://root@127.0.0.1:3306/tasker_migration_test"
    else:
        uri = "sqlite:///%s" % (tmp_path / "models.db")
    db = open_database(DbConfig(uri=uri))
    try:
        db.upgrade_schema(reset=True)
        with db.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        db.close()
