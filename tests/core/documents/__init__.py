"""Helpers shared by the document tests."""

from __future__ import annotations

from core.documents.service import DocumentAdded, Documents
from core.models import Platform
from core.services import Services
from core.storage.documents import Document


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
