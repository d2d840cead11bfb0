"""Chat in the terminal through the full pipeline (`python -m bot chat`).

On a terminal it prompts and streams replies as they are written. When stdin is not a
terminal it reads one message per line, prints each reply on stdout (followed by an
empty line), and exits at the end of input, so scripts and tests can drive it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from adapters.outage import handle_through_outage
from core.engine import Engine
from core.inbound import ChatKind, Inbound
from core.models import Platform
from core.ports import Button


@dataclass
class _ConsoleSink:
    out: TextIO
    interactive: bool
    shown: int = 0

    async def update(self, text: str) -> None:
        if self.interactive and len(text) > self.shown:
            if self.shown == 0:
                self.out.write("bot> ")
            self.out.write(text[self.shown :])
            self.out.flush()
            self.shown = len(text)

    async def finish(self, text: str) -> None:
        if self.interactive and self.shown and text.startswith(text[: self.shown]):
            self.out.write(text[self.shown :] + "\n\n")
        else:
            self.out.write(("bot> " if self.interactive else "") + text + "\n\n")
        self.out.flush()


@dataclass
class ConsoleChannel:
    out: TextIO
    interactive: bool
    files_dir: Path = field(default_factory=Path.cwd)

    async def send(self, text: str, *, buttons: Sequence[Button] = ()) -> None:
        """A terminal has no buttons: each is shown as the command it would send."""
        shown = "".join(f"\n{button.label}: {button.command}" for button in buttons)
        self.out.write(("bot> " if self.interactive else "") + text + shown + "\n\n")
        self.out.flush()

    async def send_file(self, filename: str, data: bytes, caption: str | None = None) -> None:
        path = self.files_dir / filename
        await asyncio.to_thread(path.write_bytes, data)
        await self.send(f"{caption or 'File'}: saved to {path}")

    async def typing(self) -> None:
        return None

    def start_reply(self) -> _ConsoleSink:
        return _ConsoleSink(self.out, self.interactive)


async def run_console(
    engine: Engine,
    user_name: str,
    *,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> None:
    """Read messages until end of input (or Ctrl-D) and answer each through the engine."""
    interactive = stdin.isatty()
    channel = ConsoleChannel(stdout, interactive)
    if interactive:
        stdout.write(f"onethread console chat as {user_name!r}; Ctrl-D to quit.\n\n")
    while True:
        if interactive:
            stdout.write("you> ")
            stdout.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        await handle_through_outage(
            engine,
            Inbound(
                platform=Platform.CONSOLE,
                platform_user_id=user_name,
                chat_id=f"console:{user_name}",
                chat_kind=ChatKind.PRIVATE,
                # Unique across runs: the pipeline deduplicates on message ids.
                message_id=str(time.time_ns()),
                text=text,
                sent_at=datetime.now(UTC),
                username=user_name,
                display_name=user_name,
            ),
            channel,
        )
