"""Driver failures: which ones cost their connection, and the errors the data layer raises.

An operation that failed without the server's answer (a timeout, a reset socket, asyncpg's
"another operation is in progress", a cancelled request or one cut short by its deadline,
``service.db.deadline``) leaves the connection in an unknown state: ``discard_interrupted``
(the PostgreSQL engine's ``handle_error`` hook) has SQLAlchemy invalidate it (closed, never
handed out again) and raises the error marked ``connection_invalidated`` (as an
``OperationalError`` or ``InterfaceError`` where SQLAlchemy would pass the driver's exception
through bare), which ``service.errors`` answers with 503; ``close_at_once`` (its
``invalidate`` hook) closes the socket at once. A server error (SQLSTATE) is an answer and
keeps its connection. ``driver_error`` gives the readers that call asyncpg or sqlite3
directly (``service.db.fast``, a write's ping) the same errors SQLAlchemy would raise.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    DBAPIError,
    EmulatedDBAPIException,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

#: What asyncpg raises: server errors, misuse of a connection or a protocol state it cannot
#: handle ("cannot switch to state ...; another operation is in progress"), its timeouts and
#: the socket's own errors.
ASYNCPG_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
#: PEP 249's exception classes by SQLSTATE class (PostgreSQL's documentation, appendix A), for
#: errors whose driver names no PEP 249 class; any other class is a ``DatabaseError``.
_PEP249_BY_SQLSTATE: Mapping[str, type[DBAPIError]] = {
    "08": OperationalError,  # connection exception
    "0A": NotSupportedError,
    "22": DataError,
    "23": IntegrityError,
    "42": ProgrammingError,  # syntax error or access rule violation
    "53": OperationalError,  # insufficient resources
    "57": OperationalError,  # operator intervention (shutdown, cancel)
    "58": OperationalError,  # system error
    "XX": InternalError,
}


def driver_error(sql: str, error: Exception, *, invalidated: bool) -> DBAPIError:
    """A driver's exception as the ``DBAPIError`` subclass that SQLAlchemy would raise.

    sqlite3's exceptions are PEP 249's own classes, so the names carry over. asyncpg's server
    errors are classed by their SQLSTATE, its ``InterfaceError`` (a connection misused or
    lost mid-operation) and ``InternalClientError`` (its protocol in a state it cannot
    handle) are ``InterfaceError``, except a value the driver cannot encode (its
    ``DataError``, raised before anything is sent), and a timeout or a socket error is an
    ``OperationalError``. Parameters are never kept, so no message or log line can show them.
    """
    options: dict[str, Any] = {"hide_parameters": True, "connection_invalidated": invalidated}
    if isinstance(error, sqlite3.Error):
        wrapped = DBAPIError.instance(sql, None, error, sqlite3.Error, **options)
        assert isinstance(wrapped, DBAPIError)
        return wrapped
    kind: type[DBAPIError]
    if isinstance(error, asyncpg.PostgresError):
        kind = _PEP249_BY_SQLSTATE.get(str(error.sqlstate)[:2], DatabaseError)
    elif _refused_input(error):
        kind = DataError
    elif isinstance(error, asyncpg.InterfaceError | asyncpg.InternalClientError):
        kind = InterfaceError
    else:
        kind = OperationalError
    return kind(sql, None, error, **options)


def interrupts(error: BaseException) -> bool:
    """Whether ``error`` left its asyncpg connection in an unknown state.

    A server error (``PostgresError``) is an answer: the exchange completed and the connection
    is fine, unless it is a connection error; so is a value asyncpg refused to encode before
    sending anything (its ``DataError``, SQLSTATE class 22, or a configuration error).
    Anything else (a timeout, a socket error, an interface or protocol-state error, a
    cancellation) may have cut an exchange in the middle.
    """
    if isinstance(error, asyncpg.PostgresConnectionError):
        return True  # SQLSTATE class 08, raised by asyncpg itself: the connection is gone
    return not (isinstance(error, asyncpg.PostgresError) or _refused_input(error))


def _refused_input(error: BaseException) -> bool:
    """asyncpg refused a value or an option before sending anything: its client-side
    ``DataError`` and ``ClientConfigurationError``, the interface errors that are also a
    ``ValueError`` (the name ``asyncpg.DataError`` is the server's SQLSTATE class 22)."""
    return isinstance(error, asyncpg.InterfaceError) and isinstance(error, ValueError)


def connection_lost(error: BaseException, *, closed: bool = False) -> bool:
    """Whether ``error`` (SQLAlchemy's, or a driver's) says the connection was closed under
    the statement: the server ended it (a restart, a failover, ``pg_terminate_backend``) or the
    socket was reset; ``closed``: the driver says its connection is closed now. Never a
    timeout or a cancellation, whatever state they left (the server may be frozen)."""
    if isinstance(error, DBAPIError):
        error = error.orig if error.orig is not None else error
    if isinstance(error, EmulatedDBAPIException):
        error = error.driver_exception or error
    if isinstance(error, TimeoutError | asyncio.CancelledError):
        return False
    if closed:
        return True
    if isinstance(error, asyncpg.PostgresError):
        # class 08 (connection exception), 57P01-57P03 (admin or crash shutdown, starting up)
        return str(error.sqlstate).startswith(("08", "57P"))
    if isinstance(error, asyncpg.InterfaceError):
        return "connection is closed" in str(error)
    return isinstance(error, ConnectionError)


def discard_interrupted(context: ExceptionContext) -> BaseException | None:
    """SQLAlchemy's ``handle_error`` hook of the PostgreSQL engine (see the module docstring).

    Marks a connection whose operation was interrupted as disconnected, so SQLAlchemy
    invalidates it (only it: the others are not known to be broken), and returns the error
    to raise instead of a bare driver exception, or None to keep SQLAlchemy's own.
    """
    original = context.original_exception
    if isinstance(original, EmulatedDBAPIException):  # asyncpg's error, as SQLAlchemy wraps it
        original = original.driver_exception
    if not isinstance(original, (*ASYNCPG_ERRORS, asyncio.CancelledError)):
        return None
    interrupted = interrupts(original)
    if interrupted and not context.is_disconnect:
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False
    if isinstance(original, asyncio.CancelledError):
        return None  # the request is gone; let the cancellation go on
    wrapped = context.sqlalchemy_exception
    if isinstance(wrapped, DBAPIError) and type(wrapped) is not DBAPIError:
        return None  # SQLAlchemy named a PEP 249 class; it sets connection_invalidated itself
    sql = context.statement or "(no statement)"
    return driver_error(sql, original, invalidated=interrupted or context.is_disconnect)


def close_at_once(dbapi_connection: Any, record: Any, _error: BaseException | None) -> None:
    """The PostgreSQL engine's ``invalidate`` hook: close a thrown-away connection's socket at
    once. SQLAlchemy would first close it politely, which waits up to 2 s for an answer that
    a frozen server never sends; the server ends the session when it sees the socket gone."""
    driver = record.driver_connection
    if isinstance(driver, asyncpg.Connection):
        driver.terminate()
