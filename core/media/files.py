"""The port through which the engine downloads an attachment from its platform.

Each adapter implements `FileSource` (Telegram: `getFile` and the file URL; Discord: the
attachment's URL) and `bot` registers it in `Services.files` under its platform, so the
engine never knows which platform a file comes from. An attachment is named by its
`ref`, the platform's handle kept in the message's attachments (`core.inbound.Attachment`).
"""

from __future__ import annotations

from typing import Protocol

from core.errors import OnethreadError


class MediaError(OnethreadError):
    """An attachment could not be turned into something the model can read."""


class FileTooLarge(MediaError):  # noqa: N818 - a condition, like LLMTimeout
    """The file is larger than may be downloaded."""

    def __init__(self, size: int | None) -> None:
        super().__init__(f"file too large ({size if size is not None else 'unknown'} bytes)")
        self.size = size
        """In bytes, when the platform said; None when it only refused."""


class FileUnavailable(MediaError):  # noqa: N818 - a condition, like LLMUnavailable
    """The platform did not hand the file over (gone, refused, unreachable)."""


class FileSource(Protocol):
    async def fetch(self, ref: str, *, max_bytes: int) -> bytes:
        """The file's bytes. Raises `FileTooLarge` (checked before downloading where
        the platform tells the size, and after) or `FileUnavailable`."""
