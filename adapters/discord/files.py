"""Discord's side of `core.media.files.FileSource`: an attachment's URL, fetched as
discord.py's `Attachment.read()` does (`HTTPClient.get_from_cdn`). The size is checked
before the download from the attachment's metadata (`core.media.plan`) and here after."""

from __future__ import annotations

import aiohttp
import discord

from core.media.files import FileTooLarge, FileUnavailable


class DiscordFiles:
    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def fetch(self, ref: str, *, max_bytes: int) -> bytes:
        try:
            data = await self._client.http.get_from_cdn(ref)
        except discord.HTTPException as exc:
            raise FileUnavailable(
                f"discord did not hand the file over (HTTP {exc.status})"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FileUnavailable(f"the file could not be fetched ({type(exc).__name__})") from exc
        if len(data) > max_bytes:
            raise FileTooLarge(len(data))
        return data
