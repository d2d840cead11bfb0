"""A model reply with NULs and other control characters, end to end: real
python-telegram-bot against the fake Bot API, the real engine and openai SDK.

Such a reply (a NUL-numbered placeholder inside a code block) used to send the renderer
into an endless loop that blocked the whole process.

The engine runs on a pool (`pooled`): recording a reply that holds a NUL fails
(PostgreSQL text cannot hold one, and core/engine.py stores the model's text as it
came), which on the shared test connection would abort the transaction later
statements run in.
"""

from __future__ import annotations

from core.services import Services
from fakes.openai_server import FakeOpenAI
from fakes.telegram_api import FakeTelegram, wait_until
from tests.adapters.telegram.helpers import make_adapter, running
from tests.adapters.text_cases import unshowable
from tests.core.engine_helpers import engine_with

REPLY = "Here:\r\n```python\nprint('\x000\x00')\n```\nDone\x07."


async def test_a_reply_with_control_characters_is_delivered_cleaned(
    pooled: Services, tg: FakeTelegram, fake_llm: FakeOpenAI
) -> None:
    fake_llm.push_reply(REPLY)
    async with running(make_adapter(engine_with(pooled), tg)):
        tg.push_message("show me code", user_id=1101)
        await wait_until(lambda: tg.texts(1101) == ["Here:\nprint('0')\nDone."])
        # The process is free: someone else is answered after it.
        tg.push_message("and me?", user_id=1102)
        await wait_until(lambda: tg.texts(1102) == ["echo: and me?"])

    (answer,) = tg.chat(1101)
    assert answer.parse_mode == "HTML"
    assert answer.source == (
        "Here:\n<pre><code class=\"language-python\">print('0')</code></pre>\nDone."
    )
    sent = [c.params["text"] for c in tg.calls if c.method in ("sendMessage", "editMessageText")]
    assert not [c for text in sent for c in text if unshowable(c)]
