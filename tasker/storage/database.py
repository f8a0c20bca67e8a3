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
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tasker.config import DbConfig
from tasker.errors import ConfigError, DuplicateRow, LockConflict, SetupError, StorageError, StorageUnavailable
from tasker.storage.models import Base

log = logging.getLogger(__name__)
T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Database:
    """An engine and its session factory; `transaction()` is the one way in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
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
        with _translated_errors(), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A plain connection in a transaction, for the hot paths where the ORM costs too much;
        errors translated as by `transaction()`."""
        with _translated_errors(), self.engine.begin() as connection:
            yield connection

    def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers."""
        with self.transaction() as session:
            session.execute(text("SELECT 1"))

    def upgrade_schema(self, reset: bool = False, revision: str = "head") -> None:
        """Apply the migrations up to `revision` (the newest); with `reset`, drop every table first."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        _create_database_if_missing(self.engine)
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
            raise SetupError("cannot migrate the database: %s" % _reason(exc)) from exc

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextlib.contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise DuplicateRow(_reason(exc)) from exc
    except DBAPIError as exc:
        if _code(exc) in _LOCK_CONFLICTS:
            raise LockConflict("database lock conflict: %s" % _reason(exc)) from exc
        if _is_transient(exc):
            raise StorageUnavailable("database unavailable: %s" % _reason(exc)) from exc
        raise StorageError("the database refused it: %s" % _reason(exc)) from exc


def open_database(config: DbConfig, threads: int = 1, timeout: bool = True) -> Database:
    """Build the engine for `manager.db` of the configuration, pooling a connection for each
    of `threads` threads at least (a pool smaller than its users opens and closes connections
    all the time). With `timeout`, a MySQL statement that gets no answer within
    `manager.db.timeout` seconds fails as unavailable (schema migrations go without)."""
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
            connect_args=dict(
                {"connect_timeout": 5, "charset": "utf8mb4"},
                **({"read_timeout": config.timeout, "write_timeout": config.timeout} if timeout else {}),
            ),
        )
    elif url.get_backend_name() == "sqlite":
        options["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _serialize_sqlite(engine)
    return Database(engine)


def _serialize_sqlite(engine: Engine) -> None:
    """SQLite has no row locks: take the write lock at BEGIN, so receipt and deadline check
    (and any two transactions) run one after the other, as row locks make them on MySQL."""

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _create_database_if_missing(engine: Engine) -> None:
    url = engine.url
    if url.get_backend_name() not in ("mysql", "mariadb") or not url.database:
        return
    server = create_engine(url.set(database=""), connect_args={"connect_timeout": 5})
    try:
        with server.connect() as connection:
            connection.execute(text("CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4" % url.database))
    except OperationalError as exc:
        if _is_unreachable(exc):
            raise SetupError("cannot reach the database: %s" % _reason(exc)) from exc
        log.info("not creating database %s (%s); it must exist", url.database, _reason(exc))
    finally:
        server.dispose()


# MySQL client and server errors that say "not now" rather than "never": connection lost or
# refused, too many connections, access denied, lock wait timeout, deadlock, server shutdown.
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2055}
_LOCK_CONFLICTS = {1205, 1213}  # lock wait timeout, deadlock: the transaction was rolled back
_TRANSIENT = _UNREACHABLE | _LOCK_CONFLICTS | {1040, 1045, 1053, 1927}
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


def _code(exc: DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", None)
    return args[0] if args and isinstance(args[0], int) else None


def _is_unreachable(exc: DBAPIError) -> bool:
    return _code(exc) in _UNREACHABLE


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated or _code(exc) in _TRANSIENT:
        return True
    # SQLite's "database is locked" and "unable to open" are OperationalErrors without a code.
    return isinstance(exc, OperationalError) and _code(exc) is None


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]
