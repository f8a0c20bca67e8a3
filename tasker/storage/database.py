"""The engine, transactions with tasker's error translation, and the schema migrations."""

from __future__ import annotations

import contextlib
import functools
import logging
import ssl
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from tasker.config import DbConfig, TlsConfig
from tasker.errors import (
    ConfigError,
    DuplicateRow,
    LockConflict,
    SetupError,
    StatementTooLarge,
    StorageError,
    StorageUnavailable,
    TaskerError,
)
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
        with _translated_errors(self), self._sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A plain connection in a transaction, for the hot paths where the ORM costs too much;
        errors translated as by `transaction()`."""
        with _translated_errors(self), self.engine.begin() as connection:
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
            raise SetupError("cannot migrate the database: %s" % _reason(exc)) from exc

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextlib.contextmanager
def _translated_errors(database: Database) -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise DuplicateRow(_reason(exc)) from exc
    except DBAPIError as exc:
        if _code(exc) in _LOCK_CONFLICTS:
            raise LockConflict("database lock conflict: %s" % _reason(exc)) from exc
        too_large = _too_large(exc, database)
        if too_large is not None:
            raise too_large from exc
        if _is_transient(exc):
            raise StorageUnavailable("database unavailable: %s" % _reason(exc)) from exc
        raise StorageError("the database refused it: %s" % _reason(exc)) from exc


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


class _ServerNameContext(ssl.SSLContext):
    """A client TLS context that checks the server's certificate against `server_name` when set,
    rather than against the host connected to (the name PyMySQL passes)."""

    server_name = ""

    def wrap_socket(self, sock, *args: Any, server_hostname: str | None = None, **kwargs: Any) -> ssl.SSLSocket:
        """Wrap `sock`, naming the server `server_name` if one is set."""
        return super().wrap_socket(sock, *args, server_hostname=self.server_name or server_hostname, **kwargs)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """The TLS context of database connections from `manager.db.tls`.

    The server's certificate is verified against `ca_file` (the system's CAs without one) and its
    name against the host, or `server_hostname`, unless `verify` is false; `cert_file` and
    `key_file` are the client certificate the server may ask for.
    """
    if tls.key_file and not tls.cert_file:
        raise ConfigError("manager.db.tls: key_file needs cert_file")
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = tls.server_hostname
    files = " / ".join(name for name in (tls.ca_file, tls.cert_file, tls.key_file) if name)
    try:
        if tls.ca_file:
            context.load_verify_locations(tls.ca_file)
        else:
            context.load_default_certs()
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("manager.db.tls: cannot load %s: %s" % (files, exc)) from exc
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


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


# A statement over max_allowed_packet is refused with 1153 (ER_NET_PACKET_TOO_LARGE; 1301 and
# the client's 2020 say the same of a value or an answer) and the connection is closed. When the
# server closes it while the statement is still being sent, the client sees only a reset
# connection (2006, 2013): then the statement's size, against the limit, tells the two apart.
_PACKET_TOO_LARGE = {1153, 1301, 2020}
_CONNECTION_LOST = {2006, 2013, 2055}
_MIN_PACKET_LIMIT = 1024  # the smallest max_allowed_packet MySQL and MariaDB accept
_ESCAPED = ("\\", "'", '"', "\0", "\n", "\r", "\x1a")  # sent as two bytes in a MySQL string literal


def _too_large(exc: DBAPIError, database: Database) -> StatementTooLarge | None:
    """A statement the database refused for being over its packet limit, or None.

    The error to look at may not be `exc` itself: when the server has closed the connection,
    the rollback that follows fails too, and its error is the one raised (the statement's is
    its context).
    """
    chain = list(_chain(exc))
    codes = {_code(error) for error in chain if isinstance(error, DBAPIError)}
    sent = next((error for error in chain if isinstance(error, DBAPIError) and error.statement is not None), None)
    size = _statement_size(sent) if sent is not None else None
    if codes & _PACKET_TOO_LARGE:
        limit = _known_limit(database)
        return StatementTooLarge(_too_large_message(size, limit, exc), limit)
    reset = any(isinstance(error, (ConnectionResetError, BrokenPipeError)) for error in chain)
    if not (codes & _CONNECTION_LOST and reset and size is not None and size > _MIN_PACKET_LIMIT):
        return None  # a connection lost for another reason: the database is unavailable
    limit = _known_limit(database)
    if limit is None or size < limit:
        return None
    return StatementTooLarge(_too_large_message(size, limit, exc), limit)


def _too_large_message(size: int | None, limit: int | None, exc: DBAPIError) -> str:
    what = "a statement" if size is None else "a statement of about %d bytes" % size
    if limit is None:
        return "the database refused %s as too large: %s" % (what, _reason(exc))
    return "the database refused %s: over its max_allowed_packet of %d bytes" % (what, limit)


def _known_limit(database: Database) -> int | None:
    """The database's packet limit, or None when it has none or cannot tell now."""
    try:
        return database.packet_limit
    except SQLAlchemyError:
        return None


def _chain(exc: BaseException, depth: int = 10) -> Iterator[BaseException]:
    """The exception, then the ones it was raised from or while handling, nearest first; up to
    an error tasker raised already, which belongs to an earlier statement."""
    current: BaseException | None = exc
    for _ in range(depth):
        if current is None or isinstance(current, TaskerError):
            return
        yield current
        current = current.__cause__ or current.__context__


def _statement_size(exc: DBAPIError) -> int:
    """About how many bytes the statement took on the wire: its text and its largest set of
    parameters, each as a MySQL literal."""
    params = exc.params
    sets = params if isinstance(params, list) else [params]
    values = max((sum(_literal_size(value) for value in _values(one)) for one in sets), default=0)
    return len(str(exc.statement).encode("utf-8")) + values


def _values(params: Any) -> Iterable[Any]:
    if isinstance(params, dict):
        return params.values()
    return params if isinstance(params, (tuple, list)) else ()


def _literal_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8")) + sum(value.count(char) for char in _ESCAPED) + 2
    if isinstance(value, (bytes, bytearray)):
        return len(value) + 2
    return len(str(value))


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
