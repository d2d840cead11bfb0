"""The fake OpenAI-compatible server in a process of its own, for benchmarks that must
not count its CPU as theirs.

    python -m benchmarks.fake_llm "reply text"

Prints its base URL on the first line of stdout, answers every chat request with the
reply at once, and exits when its stdin closes (so it never outlives its parent).
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from fakes.openai_server import FakeOpenAI


async def serve(reply: str) -> None:
    async with FakeOpenAI(embedding_dimensions=384, responder=lambda _: reply) as fake:
        print(fake.base_url, flush=True)
        await asyncio.to_thread(sys.stdin.read)


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1]))  # the lighter loop: its CPU shares the machine
