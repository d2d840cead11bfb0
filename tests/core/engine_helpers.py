"""Builders shared by the engine tests."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from config.persona import Persona
from core.engine import Engine
from core.inbound import Attachment, ChatKind, Inbound
from core.models import Platform
from core.services import Services
from tests.conftest import make_settings

PERSONA = Persona(description="You are the test persona.")
_ids = itertools.count(1)


def engine_with(services: Services, **settings: Any) -> Engine:
    """An engine on the same database and clients, with some settings changed."""
    changed = replace(services, settings=make_settings(**settings)) if settings else services
    return Engine(changed, persona=PERSONA)


def inbound(
    text: str,
    *,
    user: str = "u1",
    platform: Platform = Platform.TELEGRAM,
    chat: str | None = None,
    kind: ChatKind = ChatKind.PRIVATE,
    message_id: str | None = None,
    addressed: bool = True,
    attachments: tuple[Attachment, ...] = (),
) -> Inbound:
    return Inbound(
        platform=platform,
        platform_user_id=user,
        chat_id=chat or f"chat-{user}",
        chat_kind=kind,
        message_id=message_id or str(next(_ids)),
        text=text,
        sent_at=datetime.now(UTC),
        username=user,
        display_name=user.title(),
        addressed=addressed,
        attachments=attachments,
    )


def prompt_text(request: dict[str, Any]) -> str:
    """Everything the model was shown in one chat request."""
    return "\n".join(str(m.get("content")) for m in request["messages"])
