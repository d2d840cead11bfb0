"""Helpers shared by the document tests."""

from __future__ import annotations

from core.documents.service import DocumentAdded, Documents
from core.models import Platform
from core.services import Services
from core.storage.documents import Document

# Two short documents about different things, for recall to tell apart.
GARDEN = (
    "My garden plan. The tomatoes go along the south wall, where they get sun all day. "
    "Basil grows between them to keep pests away. The roses stay by the gate."
)
TAXES = (
    "Tax notes. The deadline for the income tax return is the 31st of July. Receipts "
    "for the home office must be kept for ten years."
)


async def keep(
    services: Services,
    user_id: int,
    text: str,
    *,
    filename: str = "notes.txt",
    group: str | None = None,
    platform: Platform = Platform.TELEGRAM,
) -> Document:
    """Send `text` as a document through `Documents.add`, in the person's private chat
    or in the group `group`; it must be kept."""
    added = await Documents(services).add(
        user_id,
        filename=filename,
        media_type=None,
        data=text.encode(),
        platform=platform,
        chat_id=group or f"private-{user_id}",
        shared_chat=group is not None,
    )
    assert isinstance(added, DocumentAdded) and added.new, added
    return added.document
