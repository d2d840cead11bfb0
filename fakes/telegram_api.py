"""A small fake of the Telegram Bot API, for tests that drive the real python-telegram-bot.

    async with FakeTelegram() as tg:
        bot = ExtBot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url)
        update_id = tg.push_message("hello", user_id=7)
        tg.fail("sendMessage", flood(1))

Methods: getMe, getUpdates (serves queued updates, forgets those below `offset`, long
polls up to `timeout` capped at `max_poll`), setWebhook / deleteWebhook (getUpdates
answers 409 while a webhook is set, like Telegram; meanwhile queued updates are POSTed
to the webhook, see `webhook_address`), sendMessage (with an inline keyboard, kept as
`SentMessage.buttons`), editMessageText, answerCallbackQuery, sendChatAction,
sendDocument (multipart), setMyCommands / getMyCommands / deleteMyCommands (menus kept
per scope and `language_code`, see `menu`), getFile (with the file download under
`base_file_url`, like Telegram: files a test added with `add_file`; "file is too big"
above `FILE_LIMIT`, "invalid file_id" for others). Every call is recorded in
`calls` with its parameters before any fault applies. `press(message, label)` queues
the `callback_query` update of a person pressing one of the bot's buttons.

Like Telegram, it checks what a bot sends: text over 4096 characters is "message is too
long", `parse_mode=HTML` must use Telegram's tags, properly nested ("can't parse
entities" otherwise), and an edit to the same text is "message is not modified".
Faults queued with `fail(method, ...)` answer that method's next calls, in order.

Webhook delivery works like Telegram's: every queued update is POSTed at once (JSON,
with the secret in `X-Telegram-Bot-Api-Secret-Token`), forgotten after a 2xx answer,
and sent again `webhook_retry` seconds after any other answer or a failed connection.
Each answer is recorded in `webhook_answers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp
from aiohttp import web

from fakes.local_server import LocalServer

JSONObject = dict[str, Any]

BOT_ID = 4242
BOT_USERNAME = "onethread_bot"
TOKEN = "4242:TEST-token-never-logged"
MESSAGE_LIMIT = 4096
# setMyCommands' limits: at most 100 commands, names of 1-32 lower-case letters, digits
# and underscores, descriptions of 1-256 characters.
MENU_MAX = 100
MENU_DESCRIPTION_MAX = 256
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
FILE_LIMIT = 20 * 1024 * 1024
"""The largest file the Bot API hands out through getFile."""

# PTB sends non-string parameters JSON-encoded; these are decoded for the tests.
_JSON_FIELDS = {
    "chat_id",
    "message_id",
    "offset",
    "limit",
    "timeout",
    "allowed_updates",
    "reply_parameters",
    "reply_markup",
    "commands",
    "scope",
    "drop_pending_updates",
}
_HTML_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "span",
    "tg-spoiler",
    "blockquote",
}


@dataclass(frozen=True, slots=True)
class ApiError:
    """Answer with Telegram's error shape."""

    status: int
    description: str
    parameters: JSONObject = field(default_factory=dict)


def flood(retry_after: int = 1) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def cant_parse() -> ApiError:
    return ApiError(400, "Bad Request: can't parse entities: unsupported start tag")


def migrated(new_chat_id: int) -> ApiError:
    return ApiError(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        {"migrate_to_chat_id": new_chat_id},
    )


def forbidden() -> ApiError:
    return ApiError(403, "Forbidden: bot was blocked by the user")


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    params: JSONObject
    files: dict[str, tuple[str, bytes]]


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    text: str
    """What the user sees (HTML tags removed, entities unescaped)."""
    source: str
    parse_mode: str | None
    reply_to: int | None
    buttons: list[tuple[str, str]] = field(default_factory=list)
    """The inline keyboard's buttons, (label, callback data), row after row."""


class _HtmlCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.visible: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise ValueError(f"unsupported start tag {tag!r}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            raise ValueError(f"unmatched end tag {tag!r}")

    def handle_data(self, data: str) -> None:
        self.visible.append(data)


def visible_text(text: str, parse_mode: str | None) -> str:
    """What Telegram would show; raises ValueError where it "can't parse entities"."""
    if parse_mode is None:
        return text
    if parse_mode != "HTML":
        raise ValueError(f"the fake only knows HTML, not {parse_mode}")
    checker = _HtmlCheck()
    checker.feed(text)
    checker.close()
    if checker.stack:
        raise ValueError(f"unclosed tag {checker.stack[-1]!r}")
    return "".join(checker.visible)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def mention(text: str, name: str = f"@{BOT_USERNAME}") -> JSONObject:
    """A `mention` entity for the first `name` in `text` (offsets in UTF-16 units)."""
    start = text.index(name)
    return {"type": "mention", "offset": _utf16_len(text[:start]), "length": _utf16_len(name)}


class FakeTelegram(LocalServer):
    """A Bot API server on 127.0.0.1 with a free port; see the module doc."""

    def __init__(self, *, max_poll: float = 0.5, webhook_retry: float = 0.1) -> None:
        self.token = TOKEN
        self.max_poll = max_poll
        self.webhook_retry = webhook_retry
        self.webhook_address: str | None = None
        """Where webhook updates go instead of the URL given to setWebhook (which names
        the public address; a test's adapter listens on 127.0.0.1)."""
        self.webhook_answers: list[tuple[int, int]] = []
        """(update id, HTTP status) of every webhook delivery, in order; 0 for no answer."""
        self._delivery: asyncio.Task[None] | None = None
        self.calls: list[Call] = []
        self.messages: list[SentMessage] = []
        self.webhook: JSONObject | None = None
        self.menus: dict[tuple[str, str], list[JSONObject]] = {}
        """Command menus by (scope as JSON, language code or ""), as setMyCommands left them."""
        self.confirmed_below = 0
        self._updates: list[JSONObject] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(9000)
        self._faults: dict[str, deque[ApiError]] = {}
        self._changed = asyncio.Event()
        self._files: dict[str, _StoredFile] = {}
        self.downloads: list[str] = []
        """The file paths downloaded, in order."""
        super().__init__()

    # -- what tests use -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeTelegram is not running")
        return f"http://127.0.0.1:{self._port}/bot"

    @property
    def base_file_url(self) -> str:
        return self.base_url.replace("/bot", "/file/bot")

    def push_update(self, update: JSONObject) -> int:
        """Queue an update (an `update_id` is added when missing); returns its id."""
        update = dict(update)
        update.setdefault("update_id", next(self._update_ids))
        self._updates.append(update)
        self._changed.set()
        return int(update["update_id"])

    def push_message(self, text: str | None = None, **kwargs: Any) -> int:
        """Queue a `message` update built by `message`; returns the update id."""
        return self.push_update({"message": message(text, **kwargs)})

    def press(self, sent: SentMessage, label: str, *, user_id: int = 101) -> int:
        """Queue the `callback_query` of `user_id` pressing the button `label` under the
        bot's message `sent`; returns the update id."""
        [data] = [data for shown, data in sent.buttons if shown == label]
        sender = {"id": user_id, "is_bot": False, "first_name": "Ann", "username": "ann"}
        query = {
            "id": f"query-{next(self._update_ids)}",
            "from": sender,
            "message": _message_json(sent),
            "chat_instance": f"instance-{sent.chat_id}",
            "data": data,
        }
        return self.push_update({"callback_query": query})

    def add_file(self, data: bytes, *, folder: str = "voice", size: int | None = None) -> str:
        """Keep `data` as a file the bot may download; its file_id. `size`: the size
        getFile reports (default: the data's), to stand for a file too large to keep."""
        number = len(self._files) + 1
        file_id = f"file-{number}"
        self._files[file_id] = _StoredFile(
            data, f"{folder}/file_{number}", len(data) if size is None else size
        )
        return file_id

    def file_json(self, file_id: str) -> JSONObject:
        """The fields a message's voice, audio, photo size or document has for `file_id`."""
        stored = self._files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": stored.size}

    def fail(self, method: str, *errors: ApiError) -> None:
        """The next calls of `method` get these errors, one each."""
        self._faults.setdefault(method, deque()).extend(errors)

    def webhook_statuses(self, update_id: int) -> list[int]:
        """The answers to each delivery of one update to the webhook, in order."""
        return [status for uid, status in self.webhook_answers if uid == update_id]

    def menu(
        self, language_code: str = "", scope: JSONObject | None = None
    ) -> list[tuple[str, str]]:
        """The (command, description) pairs set for exactly this scope and language."""
        commands = self.menus.get((_scope_key(scope), language_code), [])
        return [(c["command"], c["description"]) for c in commands]

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def chat(self, chat_id: int) -> list[SentMessage]:
        """The bot's messages in one chat, in order, as they look now."""
        return [m for m in self.messages if m.chat_id == chat_id]

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.chat(chat_id)]

    # -- lifecycle ----------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    async def aclose(self) -> None:
        await self._stop_delivery()
        await super().aclose()

    # -- the API ------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        # Bot API method names are case-insensitive; record them as documented.
        requested = request.match_info["method"]
        method = {name.lower(): name for name in self._methods()}.get(requested.lower(), requested)
        params, files = await _read_params(request)
        self.calls.append(Call(method, params, files))
        queued = self._faults.get(method)
        if queued:
            return _error(queued.popleft())
        handler = self._methods().get(method)
        if handler is None:
            return _error(ApiError(404, "Not Found: method not found"))
        try:
            return _ok(await handler(params, files))
        except _RefusedError as refused:
            return _error(refused.error)

    def _methods(self) -> dict[str, Callable[[JSONObject, dict[str, Any]], Any]]:
        return {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "answerCallbackQuery": self._true,
            "sendChatAction": self._true,
            "sendDocument": self._send_document,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getFile": self._get_file,
        }

    async def _true(self, params: JSONObject, files: dict[str, Any]) -> bool:
        return True

    def _menu_key(self, params: JSONObject) -> tuple[str, str]:
        """Like Telegram: a language is "" or a two-letter ISO 639-1 code."""
        language = params.get("language_code") or ""
        if not (
            language == "" or (len(language) == 2 and language.isalpha() and language.islower())
        ):
            raise _RefusedError(ApiError(400, "Bad Request: invalid language code specified"))
        scope = params.get("scope")
        return _scope_key(scope if isinstance(scope, dict) else None), language

    async def _set_my_commands(self, params: JSONObject, files: dict[str, Any]) -> bool:
        key = self._menu_key(params)
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > MENU_MAX:
            raise _RefusedError(ApiError(400, "Bad Request: too many commands"))
        for command in commands:
            if not _COMMAND_NAME.match(str(command.get("command", ""))):
                raise _RefusedError(ApiError(400, "Bad Request: BOT_COMMAND_INVALID"))
            if not 1 <= len(str(command.get("description", ""))) <= MENU_DESCRIPTION_MAX:
                raise _RefusedError(ApiError(400, "Bad Request: command description is invalid"))
        self.menus[key] = list(commands)
        return True

    async def _get_my_commands(self, params: JSONObject, files: dict[str, Any]) -> list[JSONObject]:
        return self.menus.get(self._menu_key(params), [])

    async def _delete_my_commands(self, params: JSONObject, files: dict[str, Any]) -> bool:
        self.menus.pop(self._menu_key(params), None)
        return True

    async def _get_me(self, params: JSONObject, files: dict[str, Any]) -> JSONObject:
        return {
            **bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _set_webhook(self, params: JSONObject, files: dict[str, Any]) -> bool:
        self.webhook = params
        if self._delivery is None:
            self._delivery = asyncio.create_task(self._deliver())
        return True

    async def _delete_webhook(self, params: JSONObject, files: dict[str, Any]) -> bool:
        self.webhook = None
        await self._stop_delivery()
        return True

    # -- webhook delivery ---------------------------------------------------------------

    async def _deliver(self) -> None:
        """POST every queued update to the webhook, each until it is answered 2xx."""
        posting: dict[int, asyncio.Task[None]] = {}
        try:
            async with aiohttp.ClientSession() as http:
                while True:
                    self._changed.clear()
                    for update in self._updates:
                        update_id = int(update["update_id"])
                        if update_id not in posting:
                            posting[update_id] = asyncio.create_task(
                                self._post_update(http, update, posting)
                            )
                    await self._changed.wait()
        finally:
            for task in posting.values():
                task.cancel()
            await asyncio.gather(*posting.values(), return_exceptions=True)

    async def _post_update(
        self,
        http: aiohttp.ClientSession,
        update: JSONObject,
        posting: dict[int, asyncio.Task[None]],
    ) -> None:
        while True:
            webhook = self.webhook or {}
            target = self.webhook_address or str(webhook.get("url"))
            headers = {}
            if webhook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = str(webhook["secret_token"])
            try:
                async with http.post(target, json=update, headers=headers) as response:
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            self.webhook_answers.append((int(update["update_id"]), status))
            if 200 <= status < 300:
                self._updates = [u for u in self._updates if u is not update]
                del posting[int(update["update_id"])]
                return
            await asyncio.sleep(self.webhook_retry)

    async def _stop_delivery(self) -> None:
        delivery, self._delivery = self._delivery, None
        if delivery is not None:
            delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await delivery

    async def _get_updates(self, params: JSONObject, files: dict[str, Any]) -> list[JSONObject]:
        if self.webhook is not None:
            raise _RefusedError(
                ApiError(409, "Conflict: can't use getUpdates method while webhook is active")
            )
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        wait = min(float(params.get("timeout") or 0), self.max_poll)
        if offset:
            self.confirmed_below = max(self.confirmed_below, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + wait
        while not self._updates and not self._closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=left)
        return self._updates[:limit]

    def _chat_id(self, params: JSONObject) -> int:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise _RefusedError(ApiError(400, "Bad Request: chat not found"))
        return chat_id

    def _check(self, text: str, parse_mode: str | None) -> str:
        try:
            shown = visible_text(text, parse_mode)
        except ValueError as exc:
            raise _RefusedError(ApiError(400, f"Bad Request: can't parse entities: {exc}")) from exc
        if not shown.strip():
            raise _RefusedError(ApiError(400, "Bad Request: message text is empty"))
        if _utf16_len(shown) > MESSAGE_LIMIT:
            raise _RefusedError(ApiError(400, "Bad Request: message is too long"))
        return shown

    async def _send_message(self, params: JSONObject, files: dict[str, Any]) -> JSONObject:
        chat_id = self._chat_id(params)
        text, parse_mode = str(params.get("text", "")), params.get("parse_mode")
        shown = self._check(text, parse_mode)
        reply = params.get("reply_parameters") or {}
        keyboard = (params.get("reply_markup") or {}).get("inline_keyboard", [])
        sent = SentMessage(
            chat_id,
            next(self._message_ids),
            shown,
            text,
            parse_mode,
            reply.get("message_id"),
            [(button["text"], button["callback_data"]) for row in keyboard for button in row],
        )
        self.messages.append(sent)
        return _message_json(sent)

    async def _edit_message_text(self, params: JSONObject, files: dict[str, Any]) -> JSONObject:
        chat_id = self._chat_id(params)
        found = [m for m in self.chat(chat_id) if m.message_id == params.get("message_id")]
        if not found:
            raise _RefusedError(ApiError(400, "Bad Request: message to edit not found"))
        text, parse_mode = str(params.get("text", "")), params.get("parse_mode")
        shown = self._check(text, parse_mode)
        target = found[0]
        if (target.source, target.parse_mode) == (text, parse_mode):
            raise _RefusedError(
                ApiError(
                    400,
                    "Bad Request: message is not modified: specified new message content "
                    "and reply markup are exactly the same as a current content and reply "
                    "markup of the message",
                )
            )
        target.text, target.source, target.parse_mode = shown, text, parse_mode
        return _message_json(target)

    async def _send_document(self, params: JSONObject, files: dict[str, Any]) -> JSONObject:
        chat_id = self._chat_id(params)
        if "document" not in files:
            raise _RefusedError(ApiError(400, "Bad Request: there is no document in the request"))
        name, data = files["document"]
        sent = SentMessage(chat_id, next(self._message_ids), "", "", None, None)
        return {
            **_message_json(sent),
            "document": {
                "file_id": f"doc-{sent.message_id}",
                "file_unique_id": f"u-doc-{sent.message_id}",
                "file_name": name,
                "file_size": len(data),
            },
            "caption": params.get("caption"),
        }

    async def _get_file(self, params: JSONObject, files: dict[str, Any]) -> JSONObject:
        file_id = str(params.get("file_id"))
        stored = self._files.get(file_id)
        if stored is None:
            raise _RefusedError(ApiError(400, "Bad Request: invalid file_id"))
        if stored.size > FILE_LIMIT:
            raise _RefusedError(ApiError(400, "Bad Request: file is too big"))
        return {**self.file_json(file_id), "file_path": stored.path}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        self.downloads.append(path)
        for stored in self._files.values():
            if stored.path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.Response(status=404)


@dataclass(frozen=True, slots=True)
class _StoredFile:
    data: bytes
    path: str
    size: int


class _RefusedError(Exception):
    def __init__(self, error: ApiError) -> None:
        super().__init__(error.description)
        self.error = error


def _scope_key(scope: JSONObject | None) -> str:
    return json.dumps(scope or {"type": "default"}, sort_keys=True)


async def _read_params(request: web.Request) -> tuple[JSONObject, dict[str, tuple[str, bytes]]]:
    params: JSONObject = {}
    files: dict[str, tuple[str, bytes]] = {}
    if request.content_type == "application/json":
        body = await request.json()
        return (body if isinstance(body, dict) else {}), files
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            files[key] = (value.filename, value.file.read())
        elif key in _JSON_FIELDS:
            try:
                params[key] = json.loads(value)
            except ValueError:
                params[key] = value
        else:
            params[key] = value
    return params, files


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(error: ApiError) -> web.Response:
    body: JSONObject = {"ok": False, "error_code": error.status, "description": error.description}
    if error.parameters:
        body["parameters"] = error.parameters
    return web.json_response(body, status=error.status)


def bot_user() -> JSONObject:
    return {"id": BOT_ID, "is_bot": True, "first_name": "Onethread", "username": BOT_USERNAME}


def _chat_json(chat_id: int) -> JSONObject:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Someone"}
    return {"id": chat_id, "type": "supergroup", "title": "A group"}


def _message_json(sent: SentMessage) -> JSONObject:
    return {
        "message_id": sent.message_id,
        "date": int(time.time()),
        "chat": _chat_json(sent.chat_id),
        "from": bot_user(),
        "text": sent.source,
    }


_incoming_ids = itertools.count(100_000)


def message(
    text: str | None = None,
    *,
    user_id: int = 101,
    username: str | None = "ann",
    first_name: str = "Ann",
    chat_id: int | None = None,
    chat_type: str | None = None,
    message_id: int | None = None,
    entities: list[JSONObject] | None = None,
    reply_to_bot: int | None = None,
    is_bot: bool = False,
    language_code: str | None = None,
    **extra: Any,
) -> JSONObject:
    """A Telegram `Message` object from a person; a private chat unless `chat_id` < 0."""
    chat = chat_id if chat_id is not None else user_id
    kind = chat_type or ("private" if chat > 0 else "supergroup")
    sender: JSONObject = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
    if username is not None:
        sender["username"] = username
    if language_code is not None:
        sender["language_code"] = language_code
    body: JSONObject = {
        "message_id": message_id if message_id is not None else next(_incoming_ids),
        "date": int(time.time()),
        "chat": {**_chat_json(chat), "type": kind},
        "from": sender,
        **extra,
    }
    if text is not None:
        body["text"] = text
        if entities:
            body["entities"] = entities
    if reply_to_bot is not None:
        body["reply_to_message"] = {
            "message_id": reply_to_bot,
            "date": int(time.time()),
            "chat": body["chat"],
            "from": bot_user(),
            "text": "an earlier answer",
        }
    return body


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0
) -> None:
    """Poll `condition` (which may be async) until it holds; fail the test after
    `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
