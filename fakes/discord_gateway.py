"""A fake Discord API (REST and gateway) on 127.0.0.1, for tests that drive real discord.py.

    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        ...start a client; it finds the gateway through GET /gateway/bot...
        await fake.dispatch("MESSAGE_CREATE", fake.dm_message(user, "hello"))
        fake.texts_in(fake.dm_channel_id(user))   # what the user sees now

Attachments: `attachment(..., data=...)` makes a payload whose URL serves `data` on
127.0.0.1 (discord.py's `Attachment.read()`, `HTTPClient.get_from_cdn`).

REST: what discord.py calls for logging in, syncing commands and answering: users/@me,
oauth2/applications/@me, gateway/bot, channels (get), channel messages (JSON or
multipart with files, with buttons kept as `components`; create, edit, delete, get one,
list a page of history), typing, opening DMs, bulk overwrite of global commands (checked
like Discord: descriptions and their localisations 1-100 characters, localisations
only for Discord's locales; `description_in` reads them back),
interaction callbacks and webhook followups (create, edit, @original). Interactions:
slash commands (`command_interaction`, in the client locale given) and button presses
(`press`). Every call is
recorded in `calls` (the JSON payload, or `payload_json` and the files of a multipart
body). `rate_limit(...)` makes the next matching call answer 429 the way Discord does
(`Via` header, `Retry-After`, JSON `retry_after`), so discord.py waits and retries.

History: every channel keeps its messages (`history`): those dispatched as
MESSAGE_CREATE, those the bot posted in it, and those `sent_while_down` (written while
the bot was not connected: kept, never dispatched). Listing it answers as Discord does:
at most `limit` messages (1-100, default 50), always newest first; with `after`, the
ones right after that id, else the newest (before `before`, when given). Interaction
responses are not kept (nothing here reads them back); `around` is not supported.

Gateway: HELLO, IDENTIFY -> READY (+ GUILD_CREATE for the shard's guilds), HEARTBEAT ->
HEARTBEAT_ACK, RESUME -> RESUMED. Frames go out as uncompressed text, which discord.py
accepts whatever compression it asked for. Payload shapes follow `discord/types/`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from fakes.local_server import LocalServer

JSON = dict[str, Any]

BOT_ID = 1_200_000_000_000_000_001
APP_ID = 1_200_000_000_000_000_002
GUILD_ID = 1_200_000_000_000_000_003
TEXT_CHANNEL_ID = 1_200_000_000_000_000_004
THREAD_ID = 1_200_000_000_000_000_005
BOT_ROLE_ID = 1_200_000_000_000_000_006
OWNER_ID = 1_200_000_000_000_000_007
BOT_NAME = "onethread"
# The locales Discord accepts in `name_localizations` / `description_localizations`.
DISCORD_LOCALES = frozenset(
    [
        "id",
        "da",
        "de",
        "en-GB",
        "en-US",
        "es-ES",
        "es-419",
        "fr",
        "hr",
        "it",
        "lt",
        "hu",
        "nl",
        "no",
        "pl",
        "pt-BR",
        "ro",
        "fi",
        "sv-SE",
        "vi",
        "tr",
        "cs",
        "el",
        "bg",
        "ru",
        "uk",
        "hi",
        "th",
        "zh-CN",
        "ja",
        "zh-TW",
        "ko",
    ]
)
COMMAND_DESCRIPTION_MAX = 100


@dataclass(frozen=True, slots=True)
class RestCall:
    method: str
    path: str
    """Below the API base, e.g. ``/channels/123/messages``."""
    query: dict[str, str]
    json: Any
    files: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class _Fault:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: float = 0.0


def user_payload(user_id: int, name: str, *, bot: bool = False) -> JSON:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "avatar": None,
        "global_name": name.title(),
        "bot": bot,
    }


def _timestamp() -> str:
    return datetime.now(UTC).isoformat()


class FakeDiscord(LocalServer):
    """One fake Discord: a bot in one guild (a text channel and a thread) plus DMs."""

    # Gateway websockets end their own handlers.
    handler_cancellation = False

    def __init__(self, *, shard_count: int = 1) -> None:
        self.shard_count = shard_count
        self.calls: list[RestCall] = []
        self.identifies: list[JSON] = []
        self.heartbeats = 0
        self.messages: dict[int, JSON] = {}
        """Every message the bot sent, by id, as last edited."""
        self.history: dict[int, list[JSON]] = {}
        """Per channel id, its messages in the order they were written (see the module
        doc); the bot's are the same objects as in `messages`."""
        self.interaction_messages: dict[str, list[JSON]] = {}
        """Per interaction token: the original response (first, once edited) and followups."""
        self.interaction_callbacks: list[JSON] = []
        self.commands: list[JSON] = []
        self.close_after_identify: int | None = None
        """A close code to answer IDENTIFY with, e.g. 4014 (disallowed intents)."""
        self._ids = itertools.count(1_300_000_000_000_000_000)
        self._dm_channels: dict[int, int] = {}
        self._faults: list[_Fault] = []
        self._token_channels: dict[str, int] = {}
        self._sockets: dict[int, _Socket] = {}
        self._attachments: dict[str, bytes] = {}
        self._resets: set[str] = set()
        self.downloads: list[str] = []
        """The attachment ids downloaded, in order."""
        super().__init__()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        """What `discord.http.Route.BASE` must be set to."""
        return f"{self._origin}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._require_port()}/gateway"

    @property
    def _origin(self) -> str:
        return f"http://127.0.0.1:{self._require_port()}"

    def _require_port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not running")
        return self._port

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        app.router.add_get("/attachments/{id}/{filename}", self._attachment_content)
        app.on_shutdown.append(self._close_sockets)
        return app

    async def _close_sockets(self, app: web.Application) -> None:
        for socket in list(self._sockets.values()):
            await socket.ws.close()

    # -- what tests use ---------------------------------------------------------------

    def new_id(self) -> int:
        return next(self._ids)

    def rate_limit(
        self, method: str, path: str, *, retry_after: float = 0.05, times: int = 1
    ) -> None:
        """Answer the next `times` calls of `method` on `path` (a regex) with a 429."""
        self._faults.append(_Fault(method, re.compile(path), 429, times, retry_after))

    def fail(self, method: str, path: str, *, status: int = 403, times: int = 1) -> None:
        """Answer the next `times` calls of `method` on `path` (a regex) with `status`."""
        self._faults.append(_Fault(method, re.compile(path), status, times))

    def dm_channel_id(self, user_id: int) -> int:
        """The DM channel between the bot and a user (created on first use)."""
        if user_id not in self._dm_channels:
            self._dm_channels[user_id] = self.new_id()
        return self._dm_channels[user_id]

    def sent_to(self, channel_id: int) -> list[JSON]:
        """Messages the bot sent to a channel, in order, as last edited."""
        return [m for m in self.messages.values() if m["channel_id"] == str(channel_id)]

    def texts_in(self, channel_id: int) -> list[str]:
        return [m["content"] for m in self.sent_to(channel_id)]

    def calls_to(self, method: str, path: str) -> list[RestCall]:
        """Recorded calls whose path matches the regex `path` entirely."""
        pattern = re.compile(path)
        return [c for c in self.calls if c.method == method and pattern.fullmatch(c.path)]

    @property
    def connected_shards(self) -> list[int]:
        return sorted(self._sockets)

    async def dispatch(self, event: str, data: JSON) -> None:
        """Send a DISPATCH event on the shard that owns its guild (DMs: shard 0); a
        MESSAGE_CREATE is kept in its channel's history too."""
        guild_id = data.get("guild_id")
        shard = (int(guild_id) >> 22) % self.shard_count if guild_id else 0
        socket = self._sockets.get(shard)
        if socket is None:
            raise RuntimeError(f"shard {shard} is not connected")
        if event == "MESSAGE_CREATE":
            self._keep(data)
        await socket.dispatch(event, data)

    def sent_while_down(self, message: JSON) -> None:
        """A message (from `dm_message` or `guild_message`) written while the bot was not
        connected: in its channel's history, with no gateway event."""
        self._keep(message)

    def dm_message(
        self,
        author: JSON,
        content: str,
        *,
        attachments: list[JSON] | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """A MESSAGE_CREATE payload of a DM from `author` to the bot."""
        channel_id = self.dm_channel_id(int(author["id"]))
        return self._message(author, content, channel_id, None, attachments, reply_to)

    def guild_message(
        self,
        author: JSON,
        content: str,
        *,
        channel_id: int = TEXT_CHANNEL_ID,
        mentions: list[JSON] | None = None,
        mention_roles: list[int] | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """A MESSAGE_CREATE payload in the guild (text channel, or `THREAD_ID`)."""
        data = self._message(author, content, channel_id, GUILD_ID, None, reply_to)
        data["member"] = self._member_data()
        data["mentions"] = [{**u, "member": self._member_data()} for u in mentions or []]
        data["mention_roles"] = [str(r) for r in mention_roles or []]
        return data

    def attachment(
        self,
        filename: str,
        content_type: str,
        size: int | None = None,
        data: bytes | None = None,
        *,
        reset: bool = False,
    ) -> JSON:
        """An attachment payload; with `data`, its URL serves that content (like
        Discord's CDN; 404 otherwise), or with `reset` drops the connection instead of
        answering. `size`: what the metadata says (default: the data's length, or 1234)."""
        attachment_id = self.new_id()
        url = f"{self._origin}/attachments/{attachment_id}/{filename}"
        if data is not None:
            self._attachments[str(attachment_id)] = data
        if reset:
            self._resets.add(str(attachment_id))
        return {
            "id": str(attachment_id),
            "filename": filename,
            "size": size if size is not None else len(data) if data is not None else 1234,
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    def expire(self, attachment: JSON) -> None:
        """The attachment's URL stops serving its content (Discord's links are signed
        and expire): 404 from now on."""
        self._attachments.pop(str(attachment["id"]), None)

    async def _attachment_content(self, request: web.Request) -> web.StreamResponse:
        attachment_id = request.match_info["id"]
        self.downloads.append(attachment_id)
        if attachment_id in self._resets and request.transport is not None:
            request.transport.abort()
            return web.Response()
        data = self._attachments.get(attachment_id)
        if data is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=data, content_type="application/octet-stream")

    def command_interaction(
        self,
        user: JSON,
        name: str,
        args: str | None = None,
        *,
        in_guild: bool = False,
        permissions: int = 0,
        locale: str = "en-US",
    ) -> JSON:
        """An INTERACTION_CREATE payload of slash command `name` (in a DM by default),
        from a client in `locale`."""
        command = next((c for c in self.commands if c["name"] == name), None)
        options = [] if args is None else [{"name": "args", "type": 3, "value": args}]
        data = {
            "id": command["id"] if command else str(self.new_id()),
            "name": name,
            "type": 1,
            "options": options,
        }
        return self._interaction(
            user, 2, data, in_guild=in_guild, permissions=permissions, locale=locale
        )

    def press(self, user: JSON, message: JSON, label: str) -> JSON:
        """An INTERACTION_CREATE payload of `user` pressing the button `label` under the
        bot's `message` (as the fake keeps it, in a DM or the guild's text channel)."""
        [custom_id] = [
            button["custom_id"]
            for row in message.get("components") or []
            for button in row["components"]
            if button.get("label") == label
        ]
        data = {"custom_id": custom_id, "component_type": 2}
        in_guild = message["channel_id"] == str(TEXT_CHANNEL_ID)
        interaction = self._interaction(user, 3, data, in_guild=in_guild, permissions=0)
        interaction["message"] = message
        return interaction

    def description_in(self, name: str, locale: str) -> str:
        """The description a client in `locale` shows for the synced command `name`."""
        [command] = [c for c in self.commands if c["name"] == name]
        localised = command.get("description_localizations") or {}
        return str(localised.get(locale, command["description"]))

    def _interaction(
        self,
        user: JSON,
        kind: int,
        data: JSON,
        *,
        in_guild: bool,
        permissions: int,
        locale: str = "en-US",
    ) -> JSON:
        token = f"itoken-{self.new_id()}"
        channel_id = TEXT_CHANNEL_ID if in_guild else self.dm_channel_id(int(user["id"]))
        self._token_channels[token] = channel_id
        interaction: JSON = {
            "id": str(self.new_id()),
            "application_id": str(APP_ID),
            "type": kind,
            "token": token,
            "version": 1,
            "locale": locale,
            "app_permissions": "2248473465835073",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
            "authorizing_integration_owners": {"0": str(GUILD_ID)} if in_guild else {},
            "data": data,
        }
        if in_guild:
            member = self._member_data()
            member["user"] = user
            member["permissions"] = str(permissions)
            interaction.update(
                guild_id=str(GUILD_ID),
                channel_id=str(TEXT_CHANNEL_ID),
                channel=self._text_channel(),
                member=member,
                context=0,
                guild_locale="en-US",
            )
        else:
            interaction.update(
                channel_id=str(channel_id),
                channel={"id": str(channel_id), "type": 1, "recipients": [user]},
                user=user,
                context=1,
            )
        return interaction

    # -- gateway ----------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        socket = _Socket(ws)
        await socket.send({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        shard: int | None = None
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                op = payload.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await socket.send({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    identify = payload["d"]
                    self.identifies.append(identify)
                    if self.close_after_identify is not None:
                        await ws.close(code=self.close_after_identify)
                        break
                    shard, count = identify.get("shard", [0, 1])
                    self._sockets[shard] = socket
                    await self._ready(socket, shard, count)
                elif op == 6:
                    await socket.dispatch("RESUMED", None)
        finally:
            if shard is not None and self._sockets.get(shard) is socket:
                del self._sockets[shard]
        return ws

    async def _ready(self, socket: _Socket, shard: int, count: int) -> None:
        owns_guild = (GUILD_ID >> 22) % count == shard
        guilds = [{"id": str(GUILD_ID), "unavailable": True}] if owns_guild else []
        await socket.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**user_payload(BOT_ID, BOT_NAME, bot=True), "verified": True},
                "guilds": guilds,
                "session_id": f"session-{shard}",
                "resume_gateway_url": self.gateway_url,
                "shard": [shard, count],
                "application": {"id": str(APP_ID), "flags": 0},
            },
        )
        if owns_guild:
            await socket.dispatch("GUILD_CREATE", self._guild())

    def _member_data(self) -> JSON:
        return {
            "roles": [],
            "joined_at": _timestamp(),
            "deaf": False,
            "mute": False,
            "flags": 0,
        }

    def _dm_channel(self, channel_id: int, user_id: int) -> JSON:
        user = user_payload(user_id, f"user{user_id}")
        return {"id": str(channel_id), "type": 1, "recipients": [user], "last_message_id": None}

    def _channel(self, channel_id: int) -> JSON | None:
        """GET /channels/{id}: the guild's text channel or thread, or a DM channel."""
        if channel_id == TEXT_CHANNEL_ID:
            return self._text_channel()
        if channel_id == THREAD_ID:
            return self._thread()
        for user_id, dm in self._dm_channels.items():
            if dm == channel_id:
                return self._dm_channel(channel_id, user_id)
        return None

    def _text_channel(self) -> JSON:
        return {
            "id": str(TEXT_CHANNEL_ID),
            "type": 0,
            "guild_id": str(GUILD_ID),
            "name": "general",
            "position": 0,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }

    def _guild(self) -> JSON:
        everyone = {
            "id": str(GUILD_ID),
            "name": "@everyone",
            "color": 0,
            "hoist": False,
            "position": 0,
            "permissions": "1071698660929",
            "managed": False,
            "mentionable": False,
        }
        bot_role = {
            **everyone,
            "id": str(BOT_ROLE_ID),
            "name": BOT_NAME,
            "position": 1,
            "managed": True,
            "tags": {"bot_id": str(BOT_ID)},
        }
        me = {
            **self._member_data(),
            "user": user_payload(BOT_ID, BOT_NAME, bot=True),
            "roles": [str(BOT_ROLE_ID)],
        }
        return {
            "id": str(GUILD_ID),
            "name": "Test guild",
            "owner_id": str(OWNER_ID),
            "unavailable": False,
            "member_count": 3,
            "large": False,
            "roles": [everyone, bot_role],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [self._text_channel()],
            "threads": [self._thread()],
            "members": [me],
            "voice_states": [],
            "presences": [],
            "joined_at": _timestamp(),
        }

    def _thread(self) -> JSON:
        return {
            "id": str(THREAD_ID),
            "type": 11,
            "guild_id": str(GUILD_ID),
            "parent_id": str(TEXT_CHANNEL_ID),
            "owner_id": str(OWNER_ID),
            "name": "a thread",
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _timestamp(),
                "locked": False,
            },
        }

    # -- REST -------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body, files = await _read_body(request)
        self.calls.append(RestCall(request.method, path, dict(request.query), body, files))
        fault = self._take_fault(request.method, path)
        if fault is not None:
            return _fault_response(fault)
        return await self._route(request.method, path, request.query, body, files)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.method == method and fault.path.fullmatch(path):
                fault.times -= 1
                return fault
        return None

    async def _route(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        files: list[tuple[str, bytes]],
    ) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        match (method, parts):
            case ("GET", ["users", "@me"]):
                return _json(user_payload(BOT_ID, BOT_NAME, bot=True))
            case ("GET", ["oauth2", "applications", "@me"]):
                return _json(self._application())
            case ("GET", ["gateway", "bot"]):
                limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
                return _json(
                    {
                        "url": self.gateway_url,
                        "shards": self.shard_count,
                        "session_start_limit": limit,
                    }
                )
            case ("GET", ["gateway"]):
                return _json({"url": self.gateway_url})
            case ("PUT", ["applications", _, "commands"]):
                if not all(_valid_command(c) for c in body):
                    return _json({"message": "Invalid Form Body", "code": 50035}, status=400)
                self.commands = [
                    {**c, "id": str(self.new_id()), "application_id": str(APP_ID), "version": "1"}
                    for c in body
                ]
                return _json(self.commands)
            case ("POST", ["users", "@me", "channels"]):
                recipient = int(body["recipient_id"])
                return _json(self._dm_channel(self.dm_channel_id(recipient), recipient))
            case ("GET", ["channels", channel_id]):
                channel = self._channel(int(channel_id))
                return _unknown_channel() if channel is None else _json(channel)
            case ("GET", ["channels", channel_id, "messages"]):
                return self._history_page(int(channel_id), query)
            case ("GET", ["channels", channel_id, "messages", message_id]):
                return self._history_message(int(channel_id), int(message_id))
            case ("POST", ["channels", channel_id, "typing"]):
                return web.Response(status=204)
            case ("POST", ["channels", channel_id, "messages"]):
                return _json(self._keep(self._store(int(channel_id), body, files)))
            case ("PATCH", ["channels", _, "messages", message_id]):
                return self._edit(int(message_id), body)
            case ("DELETE", ["channels", channel_id, "messages", message_id]):
                self.messages.pop(int(message_id), None)
                kept = self.history.get(int(channel_id), [])
                kept[:] = [m for m in kept if m["id"] != message_id]
                return web.Response(status=204)
            case ("POST", ["interactions", interaction_id, token, "callback"]):
                return _json(self._callback(interaction_id, token, body))
            case ("POST", ["webhooks", _, token]):
                message = self._store(self._token_channels.get(token, 0), body, files)
                self.interaction_messages.setdefault(token, []).append(message)
                return _json(message)
            case ("PATCH", ["webhooks", _, token, "messages", "@original"]):
                return _json(self._edit_original(token, body, files))
            case ("PATCH", ["webhooks", _, token, "messages", message_id]):
                return self._edit(int(message_id), body)
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _keep(self, message: JSON) -> JSON:
        self.history.setdefault(int(message["channel_id"]), []).append(message)
        return message

    def _history_message(self, channel_id: int, message_id: int) -> web.Response:
        if self._channel(channel_id) is None:
            return _unknown_channel()
        for message in self.history.get(channel_id, []):
            if int(message["id"]) == message_id:
                return _json(message)
        return _json({"message": "Unknown Message", "code": 10008}, status=404)

    def _history_page(self, channel_id: int, query: Mapping[str, str]) -> web.Response:
        """GET /channels/{id}/messages, answered as Discord does (see the module doc)."""
        if self._channel(channel_id) is None:
            return _unknown_channel()
        limit = query.get("limit", "50")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return _json({"message": "Invalid Form Body", "code": 50035}, status=400)
        written = sorted(self.history.get(channel_id, []), key=lambda m: int(m["id"]))
        count = int(limit)
        if "after" in query:
            page = [m for m in written if int(m["id"]) > int(query["after"])][:count]
        else:
            if "before" in query:
                written = [m for m in written if int(m["id"]) < int(query["before"])]
            page = written[-count:]
        return _json(page[::-1])

    def _application(self) -> JSON:
        return {
            "id": str(APP_ID),
            "name": BOT_NAME,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": user_payload(OWNER_ID, "owner"),
            "verify_key": "0" * 64,
            "flags": 0,
        }

    def _store(self, channel_id: int, body: Any, files: list[tuple[str, bytes]]) -> JSON:
        message_id = self.new_id()
        message = self._message(
            user_payload(BOT_ID, BOT_NAME, bot=True),
            body.get("content") or "",
            channel_id,
            None,
            [self.attachment(name, "application/octet-stream", len(data)) for name, data in files],
            None,
        )
        message["id"] = str(message_id)
        message["components"] = body.get("components") or []
        if "message_reference" in body:
            message["message_reference"] = body["message_reference"]
        message["allowed_mentions"] = body.get("allowed_mentions")
        self.messages[message_id] = message
        return message

    def _edit(self, message_id: int, body: Any) -> web.StreamResponse:
        message = self.messages.get(message_id)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, status=404)
        if "content" in body:
            message["content"] = body["content"]
            message["edited_timestamp"] = _timestamp()
        return _json(message)

    def _callback(self, interaction_id: str, token: str, body: Any) -> JSON:
        self.interaction_callbacks.append({"id": interaction_id, "token": token, **body})
        flags = (body.get("data") or {}).get("flags", 0)
        return {
            "interaction": {
                "id": interaction_id,
                "type": 2,
                "response_message_loading": body.get("type") == 5,
                "response_message_ephemeral": bool(flags & 64),
            },
            "resource": {"type": body.get("type")},
        }

    def _edit_original(self, token: str, body: Any, files: list[tuple[str, bytes]]) -> JSON:
        sent = self.interaction_messages.setdefault(token, [])
        if not sent or not sent[0].get("original"):
            original = self._store(self._token_channels.get(token, 0), body, files)
            original["original"] = True
            sent.insert(0, original)
            return original
        original = sent[0]
        if "content" in body:
            original["content"] = body["content"]
        if "components" in body:
            original["components"] = body["components"]
        return original

    def _message(
        self,
        author: JSON,
        content: str,
        channel_id: int,
        guild_id: int | None,
        attachments: list[JSON] | None,
        reply_to: JSON | None,
    ) -> JSON:
        data: JSON = {
            "id": str(self.new_id()),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": _timestamp(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        if reply_to is not None:
            data["type"] = 19
            data["message_reference"] = {
                "type": 0,
                "message_id": reply_to["id"],
                "channel_id": reply_to["channel_id"],
                **({"guild_id": reply_to["guild_id"]} if "guild_id" in reply_to else {}),
            }
            data["referenced_message"] = reply_to
        return data


class _Socket:
    """One gateway connection and its sequence numbers."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._sequence = 0
        self._lock = asyncio.Lock()

    async def send(self, payload: JSON) -> None:
        async with self._lock:
            await self.ws.send_str(json.dumps(payload))

    async def dispatch(self, event: str, data: Any) -> None:
        async with self._lock:
            self._sequence += 1
            payload = {"op": 0, "t": event, "s": self._sequence, "d": data}
            await self.ws.send_str(json.dumps(payload))


async def _read_body(request: web.Request) -> tuple[Any, list[tuple[str, bytes]]]:
    """The JSON payload (also of a multipart body) and the uploaded files."""
    if request.content_type == "multipart/form-data":
        form = await request.post()
        files: list[tuple[str, bytes]] = []
        payload: Any = None
        for name, value in form.items():
            if isinstance(value, web.FileField):
                if name == "payload_json":
                    payload = json.loads(value.file.read())
                else:
                    files.append((value.filename, value.file.read()))
            elif name == "payload_json":
                payload = json.loads(value)
        return payload, files
    if request.can_read_body:
        text = await request.text()
        return (json.loads(text) if text else None), []
    return None, []


def _unknown_channel() -> web.Response:
    return _json({"message": "Unknown Channel", "code": 10003}, status=404)


_ERRORS = {
    401: (0, "401: Unauthorized"),
    403: (50007, "Cannot send messages to this user"),
    404: (10003, "Unknown Channel"),
}


def _valid_command(command: JSON) -> bool:
    """Discord's checks of a command's description and its localisations."""
    texts = [command.get("description", "")]
    for key in ("name_localizations", "description_localizations"):
        localised = command.get(key) or {}
        if not set(localised) <= DISCORD_LOCALES:
            return False
        if key == "description_localizations":
            texts += localised.values()
    return all(1 <= len(text) <= COMMAND_DESCRIPTION_MAX for text in texts)


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """discord.py parses a body as JSON only for exactly ``application/json``."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def _fault_response(fault: _Fault) -> web.Response:
    if fault.status == 429:
        return _too_many_requests(fault.retry_after)
    code, message = _ERRORS.get(fault.status, (0, "injected failure"))
    return _json({"message": message, "code": code}, status=fault.status)


def _too_many_requests(retry_after: float) -> web.Response:
    """A 429 as Discord sends it; discord.py treats one without `Via` as a Cloudflare ban."""
    return _json(
        {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
        status=429,
        headers={
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": str(retry_after),
            "X-RateLimit-Bucket": "fake-bucket",
            "X-RateLimit-Scope": "user",
        },
    )
