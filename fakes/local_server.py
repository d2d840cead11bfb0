"""What every fake server shares: an aiohttp app on 127.0.0.1 at a free port."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

from aiohttp import web


class LocalServer:
    """Subclasses build their app; this starts it, reports the port, and stops it.

    `_closing` is set when the server stops, so handlers that wait (long polls,
    injected delays) can end early instead of holding up the shutdown.
    """

    # Cancel a handler when its client disconnects (not for websockets, which end
    # their own handlers).
    handler_cancellation = True

    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> None:
        runner = web.AppRunner(
            self.build_app(),
            handle_signals=False,
            access_log=None,
            handler_cancellation=self.handler_cancellation,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
