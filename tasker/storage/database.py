"""The engine, transactions with tasker's error translation, and the schema migrations."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tasker.config import DbConfig
from tasker.errors import (
    ConfigError,
    LockConflict,
    SetupError,
)
from tasker.storage.db_errors import is_unreachable, reason, translated_errors
from tasker.storage.db_tls import tls_context
from tasker.storage.models import Base

log = logging.getLogger(__name__)
T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Database:
    """An engine and its session factory; `transaction()` is the one way in."""

    def __init__(self, engine: Engine, connect_args: dict | None = None) -> None:
        self.engine = engine
        # What the engine's connections are opened with (TLS among them): a connection to the
        # server without a database, to create it, is opened the same way.
        self._connect_args = dict(connect_args or {})
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def locks_rows(self) -> bool:
        """Whether `SELECT ... FOR UPDATE` means anything on this database."""
        return self.engine.dialect.name != "sqlite"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """An ORM session in a transaction, committed on success.

        Database errors leave as tasker's: StorageUnavailable (try again later), DuplicateRow,
        or StorageError (the statement will never work).
        """
        with translated_errors(self), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A plain connection in a transaction, for the hot paths where the ORM costs too much;
        errors translated as by `transaction()`."""
        with translated_errors(self), self.engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A plain connection whose statements all read one snapshot of the database, for a read
        of several statements that must agree (a task's row and its responses'); errors
        translated as by `transaction()`."""
        with translated_errors(self), self.engine.begin() as connection:
            if self.engine.dialect.name in ("mysql", "mariadb"):
                # For the next transaction only, which the first SELECT starts: READ COMMITTED
                # (the engine's level) would let a commit land between two statements.
                connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield connection

    @functools.cached_property
    def packet_limit(self) -> int | None:
        """The largest statement the database takes, in bytes (MySQL's `max_allowed_packet`),
        read once; None for a database without one. Raises SQLAlchemyError if it cannot be read."""
        if self.engine.dialect.name not in ("mysql", "mariadb"):
            return None
        with self.engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())

    def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers."""
        with self.transaction() as session:
            session.execute(text("SELECT 1"))

    def upgrade_schema(self, reset: bool = False, revision: str = "head") -> None:
        """Apply the migrations up to `revision` (the newest); with `reset`, drop every table first."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        _create_database_if_missing(self.engine, self._connect_args)
        settings = AlembicConfig()
        settings.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                settings.attributes["connection"] = connection
                if reset:
                    Base.metadata.drop_all(connection)
                    connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
                command.upgrade(settings, revision)
        except SQLAlchemyError as exc:
            raise SetupError("cannot migrate the database: %s" % reason(exc)) from exc

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(config: DbConfig, threads: int = 1, timeout: bool = True) -> Database:
    """Build the engine for `manager.db` of the configuration, pooling a connection for each
    of `threads` threads at least (a pool smaller than its users opens and closes connections
    all the time). With `timeout`, a MySQL statement that gets no answer within
    `manager.db.timeout` seconds fails as unavailable (schema migrations go without). With
    `manager.db.tls.enabled`, every MySQL connection (migrations too) goes over TLS."""
    try:
        url = make_url(config.uri)
    except ArgumentError as exc:
        raise ConfigError("manager.db.uri is not a database URL (dialect+driver://user:password@host/db)") from exc
    options: dict = {"echo": config.verbose, "pool_pre_ping": True}
    if url.get_backend_name() in ("mysql", "mariadb"):
        # READ COMMITTED: after locking a task row, a transaction sees what others committed.
        options.update(
            isolation_level="READ COMMITTED",
            pool_size=max(config.pool_size, threads),
            pool_recycle=3600,
            connect_args=_mysql_connect_args(config, timeout),
        )
    elif config.tls.enabled:
        raise ConfigError("manager.db.tls is for MySQL and MariaDB; %s has no TLS" % url.get_backend_name())
    elif url.get_backend_name() == "sqlite":
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _serialize_sqlite(engine)
    return Database(engine, options.get("connect_args"))


def _mysql_connect_args(config: DbConfig, timeout: bool) -> dict:
    """PyMySQL's connection arguments: time limits, the character set, TLS."""
    args: dict = {"connect_timeout": 5, "charset": "utf8mb4"}
    if timeout:
        args.update(read_timeout=config.timeout, write_timeout=config.timeout)
    if config.tls.enabled:
        args["ssl"] = tls_context(config.tls)
    return args


def _serialize_sqlite(engine: Engine) -> None:
    """SQLite has no row locks: take the write lock at BEGIN, so receipt and deadline check
    (and any two transactions) run one after the other, as row locks make them on MySQL."""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_database_if_missing(engine: Engine, connect_args: dict) -> None:
    url = engine.url
    if url.get_backend_name() not in ("mysql", "mariadb") or not url.database:
        return
    server = create_engine(url.set(database=""), connect_args=connect_args)
    try:
        with server.connect() as connection:
            connection.execute(text("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4" % url.database))
    except OperationalError as exc:
        if is_unreachable(exc):
            raise SetupError("cannot reach the database: %s" % reason(exc)) from exc
        log.info("not creating database %s (%s); it must exist", url.database, reason(exc))
    finally:
        server.dispose()


CONFLICT_RETRIES = 5


def retry_conflicts(method: Callable[..., T]) -> Callable[..., T]:
    """Run a storage method (a whole transaction) again when the database rolled it back to
    break a deadlock; transactions that lock several task rows can meet that under load."""

    @functools.wraps(method)
    def retried(*args: Any, **kwargs: Any) -> T:
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                return method(*args, **kwargs)
            except LockConflict:
                if attempt == CONFLICT_RETRIES:
                    raise
                log.info("%s: lock conflict, running it again (attempt %d)", method.__name__, attempt + 1)
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    return retried
