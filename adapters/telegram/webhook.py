"""The webhook endpoint: Telegram POSTs each update; we answer once it is safe.

Served by tornado (PTB's `webhooks` extra already depends on it). Every request must
carry the secret given to setWebhook in `X-Telegram-Bot-Api-Secret-Token`; anything
else gets 403 and is not looked at. Because nothing is kept in memory between
requests, several replicas can sit behind one load balancer.

The response is held until the update is acknowledgeable (`dispatch.Submission`: its
message stored, or its handler finished), not until its reply is written. An update
that is not acknowledgeable within `ack_timeout` (the database is down and its handler
keeps retrying) or whose handler was cancelled (shutdown) gets 503, so Telegram
delivers it again: a message still waiting to be stored never gets 200. The retry
usually finds the first delivery still running here and waits for it; otherwise the
engine deduplicates it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from adapters.telegram.dispatch import Dispatcher, Submission
from adapters.telegram.translate import parse_update

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name

Receive = Callable[[dict[str, Any]], Submission | None]


class _UpdateHandler(RequestHandler):
    def initialize(self, receive: Receive, secret: str, ack_timeout: float) -> None:
        self._receive = receive
        self._secret = secret
        self._ack_timeout = ack_timeout

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self._secret.encode()):
            logger.warning("telegram webhook request without the right secret refused")
            self.set_status(403)
            return
        try:
            data = json.loads(self.request.body)
        except ValueError:
            self.set_status(400)
            return
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            self.set_status(400)
            return
        submission = self._receive(data)
        if submission is None:  # unreadable: acknowledged, or Telegram would retry it for ever
            self.set_status(200)
            return
        acknowledgeable = submission.acknowledgeable
        await asyncio.wait([acknowledgeable], timeout=self._ack_timeout)
        # Not done: still not stored. Cancelled: shut down before it was. Either way
        # an error status makes Telegram send it again.
        safe = acknowledgeable.done() and not acknowledgeable.cancelled()
        self.set_status(200 if safe else 503)

    def log_exception(self, *args: Any) -> None:
        # The default logs the request (and its body) at ERROR; the dispatcher logs ours.
        logger.error("telegram webhook request failed", exc_info=args[1] if len(args) > 1 else None)


class WebhookServer:
    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        *,
        listen: str,
        port: int,
        path: str,
        secret: str,
        ack_timeout: float,
    ) -> None:
        self._bot = bot
        self._dispatcher = dispatcher
        self._listen = listen
        self._port = port
        self._path = path
        self._secret = secret
        self._ack_timeout = ack_timeout
        self._server: HTTPServer | None = None
        self.port: int | None = None
        """The port actually listened on (useful with port 0)."""

    def _receive(self, data: dict[str, Any]) -> Submission | None:
        update = parse_update(data, self._bot)
        return None if update is None else self._dispatcher.submit(update)

    async def start(self) -> None:
        app = Application(
            [
                (
                    self._path,
                    _UpdateHandler,
                    {
                        "receive": self._receive,
                        "secret": self._secret,
                        "ack_timeout": self._ack_timeout,
                    },
                )
            ],
            log_function=lambda handler: None,
        )
        sockets = bind_sockets(self._port, self._listen)
        server = HTTPServer(app, xheaders=True)
        server.add_sockets(sockets)
        self._server = server
        self.port = int(sockets[0].getsockname()[1])
        logger.info("telegram webhook listening on %s:%s%s", self._listen, self.port, self._path)

    async def stop(self, grace: float) -> None:
        """Refuse new connections, let handlers finish within `grace` seconds, close."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        await self._dispatcher.drain(grace)
        await server.close_all_connections()
