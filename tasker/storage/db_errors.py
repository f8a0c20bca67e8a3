"""How the database's errors become tasker's: unavailable (try again later), a lock conflict
(run the transaction again), a duplicate row, a statement too large, or refused for good."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Protocol

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from tasker.errors import DuplicateRow, LockConflict, StatementTooLarge, StorageError, StorageUnavailable, TaskerError


class _Limited(Protocol):
    """The database a statement went to: what its packet limit is."""

    @property
    def packet_limit(self) -> int | None: ...


# MySQL client and server errors that say "not now" rather than "never": connection lost or
# refused, too many connections, access denied, lock wait timeout, deadlock, server shutdown.
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2055}
_LOCK_CONFLICTS = {1205, 1213}  # lock wait timeout, deadlock: the transaction was rolled back
_TRANSIENT = _UNREACHABLE | _LOCK_CONFLICTS | {1040, 1045, 1053, 1927}


@contextlib.contextmanager
def translated_errors(database: _Limited) -> Iterator[None]:
    """Raise what goes wrong inside as tasker's errors (SQLAlchemy's stay in storage)."""
    try:
        yield
    except IntegrityError as exc:
        raise DuplicateRow(reason(exc)) from exc
    except DBAPIError as exc:
        if _code(exc) in _LOCK_CONFLICTS:
            raise LockConflict("database lock conflict: %s" % reason(exc)) from exc
        too_large = _too_large(exc, database)
        if too_large is not None:
            raise too_large from exc
        if _is_transient(exc):
            raise StorageUnavailable("database unavailable: %s" % reason(exc)) from exc
        raise StorageError("the database refused it: %s" % reason(exc)) from exc


# A statement over max_allowed_packet is refused with 1153 (ER_NET_PACKET_TOO_LARGE; 1301 and
# the client's 2020 say the same of a value or an answer) and the connection is closed. When the
# server closes it while the statement is still being sent, the client sees only a reset
# connection (2006, 2013): then the statement's size, against the limit, tells the two apart.
_PACKET_TOO_LARGE = {1153, 1301, 2020}
_CONNECTION_LOST = {2006, 2013, 2055}
_MIN_PACKET_LIMIT = 1024  # the smallest max_allowed_packet MySQL and MariaDB accept
_ESCAPED = ("\\", "'", '"', "\0", "\n", "\r", "\x1a")  # sent as two bytes in a MySQL string literal


def _too_large(exc: DBAPIError, database: _Limited) -> StatementTooLarge | None:
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
        return "the database refused %s as too large: %s" % (what, reason(exc))
    return "the database refused %s: over its max_allowed_packet of %d bytes" % (what, limit)


def _known_limit(database: _Limited) -> int | None:
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


def is_unreachable(exc: DBAPIError) -> bool:
    return _code(exc) in _UNREACHABLE


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated or _code(exc) in _TRANSIENT:
        return True
    # SQLite's "database is locked" and "unable to open" are OperationalErrors without a code.
    return isinstance(exc, OperationalError) and _code(exc) is None


def reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]
