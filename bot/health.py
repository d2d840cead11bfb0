"""The service's HTTP endpoints: liveness, readiness, and Prometheus metrics.

- `/healthz`: the process is up and its event loop answers.
- `/readyz`: the database answers, no migration is pending, every adapter is connected.
  503 with the reasons otherwise, so a load balancer or orchestrator stops routing.
- `/metrics`: Prometheus text format (prometheus-client).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from core.errors import StorageBusy, StorageUnavailable
from core.storage import migrations
from core.storage.database import Database

logger = logging.getLogger(__name__)

READINESS_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class ReadinessProbe:
    name: str
    is_ready: Callable[[], bool]


class HealthServer:
    def __init__(
        self, db: Database, probes: Sequence[ReadinessProbe], *, host: str, port: int
    ) -> None:
        self._db = db
        self._probes = list(probes)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        logger.info("health and metrics on http://%s:%s", self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def problems(self) -> list[str]:
        """Why the service is not ready; empty when it is."""
        found = [f"{p.name} is not connected" for p in self._probes if not p.is_ready()]
        try:
            async with asyncio.timeout(READINESS_TIMEOUT), self._db.connection() as conn:
                if await migrations.pending(conn):
                    found.append("database migrations are pending")
        except StorageBusy:
            found.append("database busy: no pooled connection free")
        except (StorageUnavailable, TimeoutError, asyncpg.PostgresError) as exc:
            cause = exc.__cause__ if isinstance(exc, StorageUnavailable) else exc
            found.append(f"database unreachable ({type(cause or exc).__name__})")
        except Exception as exc:
            # A pooled connection whose server was killed can fail in the driver's own
            # way (asyncpg: "cannot switch to state ..."): not ready, never a 500.
            logger.warning("readiness check of the database failed: %s", type(exc).__name__)
            found.append(f"database unreachable ({type(exc).__name__})")
        return found

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        found = await self.problems()
        if found:
            return web.Response(status=503, text="not ready: " + "; ".join(found) + "\n")
        return web.Response(text="ready\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
