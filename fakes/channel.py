"""A `ReplyChannel` that records what the engine sends, for tests of core without a platform."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from core.ports import Button


@dataclass
class RecordingSink:
    updates: list[str] = field(default_factory=list)
    final: str | None = None
    on_finish: Callable[[RecordingSink, str], Awaitable[None]] | None = None
    """Runs instead of recording `finish` (it may record it, then fail, or do more)."""

    async def update(self, text: str) -> None:
        self.updates.append(text)

    async def finish(self, text: str) -> None:
        if self.on_finish is not None:
            await self.on_finish(self, text)
        else:
            self.final = text


@dataclass
class RecordingChannel:
    sent: list[str] = field(default_factory=list)
    buttons: list[tuple[Button, ...]] = field(default_factory=list)
    """The buttons under each message of `sent`, in the same order."""
    files: list[tuple[str, bytes, str | None]] = field(default_factory=list)
    typing_count: int = 0
    replies: list[RecordingSink] = field(default_factory=list)
    on_finish: Callable[[RecordingSink, str], Awaitable[None]] | None = None
    """Given to every reply started from now on (`RecordingSink.on_finish`)."""

    async def send(self, text: str, *, buttons: Sequence[Button] = ()) -> None:
        self.sent.append(text)
        self.buttons.append(tuple(buttons))

    async def send_file(self, filename: str, data: bytes, caption: str | None = None) -> None:
        self.files.append((filename, data, caption))

    async def typing(self) -> None:
        self.typing_count += 1

    def start_reply(self) -> RecordingSink:
        sink = RecordingSink(on_finish=self.on_finish)
        self.replies.append(sink)
        return sink

    @property
    def texts(self) -> list[str]:
        """Everything the user saw, in order: notices and finished replies."""
        return self.sent + [r.final for r in self.replies if r.final is not None]

    @property
    def last(self) -> str:
        finals = [r.final for r in self.replies if r.final is not None]
        return (self.sent + finals)[-1]
