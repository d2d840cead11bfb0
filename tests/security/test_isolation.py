"""One person's data never reaches another person's prompt, under concurrent load.

200 people write at once through the real engine on a connection pool: each message
carries a token unique to its author, and each person has a stored fact with another
unique token. Half of them talk in private chats, half in one shared group. Every
prompt the fake LLM received must contain the tokens of exactly one person: the
author of the message it answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter

from core.engine import Engine
from core.inbound import ChatKind
from core.models import NewFact, Platform
from fakes.channel import RecordingChannel
from fakes.openai_server import FakeOpenAI
from tests.core.engine_helpers import PERSONA, inbound, prompt_text
from tests.security.conftest import PooledServices

USERS = 200
MESSAGES_EACH = 2
TOKEN = re.compile(r"\b(?:msg|fact)-(u\d+)-[0-9a-f]{8}\b")


def _token(kind: str, user: str, n: int) -> str:
    digest = hashlib.sha256(f"{kind}/{user}/{n}".encode()).hexdigest()[:8]
    return f"{kind}-{user}-{digest}"


async def test_no_prompt_ever_holds_another_persons_data(
    pooled: PooledServices, fake_llm: FakeOpenAI
) -> None:
    services = pooled(db={"pool_max_size": 20})
    engine = Engine(services, persona=PERSONA)
    people = [f"u{i}" for i in range(USERS)]
    channels = {person: RecordingChannel() for person in people}

    # Everyone exists and has a fact the prompt may include (their own only).
    for person in people:
        user, _ = await services.users.get_or_create(
            Platform.TELEGRAM, person, username=person, display_name=person
        )
        await services.facts.add(
            user.id, NewFact(f"Their locker code is {_token('fact', person, 0)}", importance=9)
        )

    async def talk(number: int, person: str) -> None:
        shared = number % 2 == 1
        for n in range(MESSAGES_EACH):
            text = f"Remember {_token('msg', person, n)} please"
            message = inbound(
                text,
                user=person,
                chat="shared-group" if shared else None,
                kind=ChatKind.GROUP if shared else ChatKind.PRIVATE,
            )
            await engine.handle(message, channels[person])

    await asyncio.gather(*(talk(i, p) for i, p in enumerate(people)))

    requests = fake_llm.chat_requests
    assert len(requests) == USERS * MESSAGES_EACH
    authors: Counter[str] = Counter()
    for request in requests:
        owners = {match[1] for match in TOKEN.finditer(prompt_text(request))}
        assert len(owners) == 1, f"a prompt holds data of {sorted(owners)}"
        [owner] = owners
        last = request["messages"][-1]["content"]
        assert f"msg-{owner}-" in last  # the message it answers is the owner's
        authors[owner] += 1
    assert authors == Counter(dict.fromkeys(people, MESSAGES_EACH))

    # Every person got exactly their own answers, in order.
    for person, channel in channels.items():
        expected = [f"echo: Remember {_token('msg', person, n)} please" for n in range(2)]
        assert [r.final for r in channel.replies] == expected
        assert channel.sent == []
