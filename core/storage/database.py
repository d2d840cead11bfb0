"""The connection pool and the `Database` handle that repositories share.

Repositories never acquire connections themselves: every method takes an optional
connection, and without one runs on the pool. `Database.transaction()` lets a caller
compose several repository calls into one transaction. A `Database` can also wrap a
single connection (tests run each case inside a transaction that is rolled back;
asyncpg turns the nested `transaction()` calls into savepoints).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg
import numpy as np
from pgvector import HalfVector, Vector
from pgvector.asyncpg import register_vector

from core.errors import DatabaseSetupError, StorageBusy, StorageUnavailable

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool

MIN_SERVER_VERSION = 150000
MIN_PGVECTOR = (0, 8, 0)


async def _init_connection(conn: Connection) -> None:
    await register_vector(conn)
    # pgvector's decoders, and its encoders but for numpy arrays (every embedding we
    # send): those it copies element by element, a few percent of a chat turn's CPU.
    for name, vector_type, dtype in (("vector", Vector, ">f4"), ("halfvec", HalfVector, ">f2")):
        await conn.set_type_codec(
            name,
            encoder=_vector_encoder(vector_type, dtype),
            decoder=vector_type.from_binary,
            format="binary",
        )
    # Binary, so that jsonb inside a record (`ROW(...)`, as a turn reads its messages)
    # decodes too: asyncpg reads records in the binary format.
    await conn.set_type_codec(
        "jsonb", encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog", format="binary"
    )


_VECTOR_HEADER = struct.Struct(">HH")  # dimensions, unused (pgvector's binary format)


def _vector_encoder(
    vector_type: type[Vector] | type[HalfVector], dtype: str
) -> Callable[[Any], bytes]:
    """pgvector's binary format of a `vector_type` value: a numpy array converted in one
    step (big-endian `dtype` elements after the header), anything else by pgvector."""

    def encode(value: Any) -> bytes:
        if isinstance(value, np.ndarray) and value.ndim == 1:
            return _VECTOR_HEADER.pack(len(value), 0) + value.astype(dtype, copy=False).tobytes()
        return (value if isinstance(value, vector_type) else vector_type(value)).to_binary()

    return encode


_JSONB_VERSION = b"\x01"  # the first byte of jsonb's binary format


def _json_dumps(value: Any) -> bytes:
    return _JSONB_VERSION + json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _json_loads(value: bytes) -> Any:
    return json.loads(value[1:])


_SESSION_LOCK_HOLDERS: set[int] = set()
"""Connections that took session advisory locks since the pool last took them back
(`try_session_lock`), by the `id` of their settings object: one per connection, the
same seen through the pool's proxy as on the connection the reset is given. An entry of
a connection closed without a reset only costs a connection that later gets the same
`id` one needless unlock."""


async def try_session_lock(conn: Connection, lock_class: int, key: int) -> bool:
    """Take the session advisory lock (`lock_class`, `key`) on `conn` unless another
    session holds it: a job's claim, held across its transactions. When the pool takes
    `conn` back, it releases any such lock still held, whatever went wrong before the
    holder could (`_reset_session`)."""
    _SESSION_LOCK_HOLDERS.add(id(conn.get_settings()))
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", lock_class, key))


async def release_session_lock(conn: Connection, lock_class: int, key: int) -> None:
    """Give up a lock `try_session_lock` took on `conn`."""
    await conn.execute("SELECT pg_advisory_unlock($1, $2)", lock_class, key)


async def _reset_session(conn: Connection) -> None:
    """The pool's reset of a connection given back: the session advisory locks of a
    connection that took any (`try_session_lock`), else nothing.

    asyncpg rolls back a transaction left open and drops listeners before calling this.
    Its default reset would also send `RESET ALL; CLOSE ALL; UNLISTEN *;
    pg_advisory_unlock_all()`: a round trip, and four statements for the server, at
    every checkout, about a tenth of a turn's statements' cost (docs/pipeline.md). Our
    statements leave no other session state: settings are `SET LOCAL` or
    `set_config(..., true)` but for `asynchronous_commit`, which restores its own or
    closes the connection; other advisory locks are `pg_advisory_xact_lock`, cursors live
    in transactions, nobody listens.
    """
    key = id(conn.get_settings())
    if key in _SESSION_LOCK_HOLDERS:
        _SESSION_LOCK_HOLDERS.discard(key)
        await conn.execute("SELECT pg_advisory_unlock_all()")


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, command_timeout: float = 30.0
) -> Pool:
    """A pool whose connections know the pgvector and jsonb codecs.

    Call only after migrations ran: registering the codec needs the extension.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout,
        init=_init_connection,
        reset=_reset_session,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> Connection:
    """One connection with the same codecs as the pool's."""
    conn: Connection = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


@asynccontextmanager
async def asynchronous_commit(conn: Connection) -> AsyncIterator[Connection]:
    """Commits on `conn` during the block do not wait for their WAL flush.

    For a run of writes whose loss in a server crash is harmless (archive moves): a crash
    can lose at most the last few hundred milliseconds of them, never corrupt anything,
    and any later synchronous commit flushes them too. Back to the server's setting
    afterwards. The pool does not reset settings (`_reset_session`), so a connection
    that might still skip its WAL flushes is closed instead: after an error in the block,
    or a transaction the block left open (its rollback would undo the reset; inside the
    caller's transaction, setting and reset commit or roll back together). A single such
    statement can do it inside itself instead (`MessageRepository.mark_delivered`),
    which saves the two round trips.
    """
    in_transaction = conn.is_in_transaction()
    try:
        await conn.execute("SET synchronous_commit = off")
        yield conn
    except BaseException:
        if not in_transaction:  # else the caller's transaction ends the setting's fate
            _close(conn)
        raise
    if conn.is_in_transaction() and not in_transaction:
        _close(conn)
        return
    try:
        await conn.execute("RESET synchronous_commit")
    except BaseException:
        _close(conn)
        raise


def _close(conn: Connection) -> None:
    with suppress(asyncpg.InterfaceError):  # lost, and given back already
        conn.terminate()


def is_outage(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached (as opposed to a bug, or a
    statement the server refused)."""
    outage_types = (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.OperatorInterventionError,
        # A pooled connection whose server died in the middle of an operation ("cannot
        # switch to state ...", seen after the postmaster was killed).
        asyncpg.exceptions.InternalClientError,
    )
    cause: BaseException | None = exc
    for _ in range(5):  # the error itself and a few links of its `raise ... from` chain
        if cause is None:
            return False
        if isinstance(cause, (StorageUnavailable, *outage_types)):
            return True
        cause = cause.__cause__
    return False


async def _release_in_this_task(proxy: Any, budget: float | None) -> None:
    """`Pool.release(proxy, timeout=budget)`, for a block that ended without an error, run
    in the caller's task, which then lets the event loop take one turn.

    `Pool.release` runs the release in a task of its own (`asyncio.shield`), so that a
    cancellation arriving meanwhile cannot stop it half-way; the caller resumes only once
    the loop has started that task and passed its end back, three turns of the loop.
    With hundreds of replies streaming each turn waits behind their chunks, and a chat
    turn gives a connection back four times (docs/benchmarks.md, "Latency"). A block
    that ended normally brings no cancellation with it, so the release runs here. Should
    one arrive while it waits (a rollback, the unlock of a job's claims), asyncpg
    terminates the connection and the pool opens another when next asked: nothing
    leaks, and the server drops the transaction and the claims as it sees the connection
    go (`Pool.release` would have finished the release and kept the connection). A
    chat turn's release never waits. After an error (a cancellation, an outage) the
    caller uses `Pool.release`, shield and all.

    The one turn kept (`sleep(0)`) is measured, not a leftover. Without it a task that
    gave a connection back went straight on to its next statement, ahead of whoever the
    release had just woken to take the connection (with every connection taken, the
    slowest messages waited about 40% longer), and the work after a statement ran in the
    same turn of the loop as the statement's answer, delaying timers and other people's
    commands (docs/benchmarks.md, "Latency").

    This is `Pool.release` without the shield, so it reads asyncpg's pool internals (the
    proxy's connection and holder); tests/core/storage/test_pool.py checks what it does.
    """
    if proxy._con is None:  # given back already
        return
    proxy._con._on_release()
    await proxy._holder.release(budget)
    await asyncio.sleep(0)


class Database:
    """Where repositories run their queries: a pool, or one connection (tests, scripts).

    Errors that mean the server cannot be reached leave as `StorageUnavailable`; a pool
    with no connection free within `acquire_timeout` raises `StorageBusy`.
    """

    def __init__(self, target: Pool | Connection, *, acquire_timeout: float | None = None) -> None:
        self._target = target
        self._acquire_timeout = acquire_timeout

    @asynccontextmanager
    async def connection(self, conn: Connection | None = None) -> AsyncIterator[Connection]:
        """`conn` when the caller has one, else a connection from the pool."""
        try:
            if conn is not None:
                yield conn
            elif isinstance(self._target, asyncpg.Pool):
                pool = self._target
                # The wait has a deadline of its own (not `acquire(timeout=...)`), so
                # that only its expiry means a busy pool: a TimeoutError from inside
                # `acquire` (a new connection that could not connect in time) is an
                # outage, below.
                try:
                    async with asyncio.timeout(self._acquire_timeout) as deadline:
                        acquired = await pool.acquire()
                except TimeoutError as exc:
                    if not deadline.expired():
                        raise
                    raise StorageBusy(
                        f"no database connection free within {self._acquire_timeout} s"
                    ) from exc
                # The reset, and a wait for a cancelled query's end, within the same time
                # (asyncpg's own default when `acquire` is given a timeout).
                try:
                    # A pool's proxy behaves as the connection it wraps.
                    yield cast(Connection, acquired)
                except BaseException:
                    await pool.release(acquired, timeout=self._acquire_timeout)
                    raise
                await _release_in_this_task(acquired, self._acquire_timeout)
            else:
                yield self._target
        except (StorageBusy, StorageUnavailable):
            raise
        except Exception as exc:
            if is_outage(exc):
                raise StorageUnavailable("the database is unreachable") from exc
            raise

    @asynccontextmanager
    async def transaction(self, conn: Connection | None = None) -> AsyncIterator[Connection]:
        """A transaction, or a savepoint inside the caller's transaction."""
        async with self.connection(conn) as c, c.transaction():
            yield c

    @property
    def pool(self) -> Pool | None:
        return self._target if isinstance(self._target, asyncpg.Pool) else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


async def check_server(conn: Connection) -> None:
    """Refuse servers onethread cannot run on, saying what to install."""
    version = int(await conn.fetchval("SHOW server_version_num"))
    if version < MIN_SERVER_VERSION:
        raise DatabaseSetupError(
            f"PostgreSQL {version // 10000} is too old: onethread needs PostgreSQL 15 or newer "
            "with pgvector 0.8 (e.g. the pgvector/pgvector:pg18 image)."
        )
    row = await conn.fetchrow(
        "SELECT default_version, installed_version FROM pg_available_extensions"
        " WHERE name = 'vector'"
    )
    if row is None:
        raise DatabaseSetupError(
            "the pgvector extension is not installed on this PostgreSQL server: install "
            "pgvector 0.8 or newer (package postgresql-NN-pgvector, or the pgvector/pgvector "
            "image), or unset DATABASE_URL to use the embedded server."
        )
    available = _version_tuple(row["default_version"])
    if available < MIN_PGVECTOR:
        raise DatabaseSetupError(
            f"pgvector {row['default_version']} is too old: onethread needs 0.8 or newer "
            "(for iterative index scans). Upgrade the pgvector package on the server."
        )
    installed = row["installed_version"]
    if installed is not None and _version_tuple(installed) < MIN_PGVECTOR:
        try:
            await conn.execute("ALTER EXTENSION vector UPDATE")
        except asyncpg.PostgresError as exc:
            raise DatabaseSetupError(
                f"pgvector {installed} is installed in this database but onethread needs 0.8: "
                "run ALTER EXTENSION vector UPDATE as a superuser."
            ) from exc
