"""`python -m bot chat` driven through stdin, as a script would."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from fakes.openai_server import FakeOpenAI


async def _chat(
    lines: list[str], *, env: dict[str, str], args: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "chat",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(
        process.communicate("".join(f"{line}\n" for line in lines).encode()), timeout=120
    )
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _env(tmp_path: Path, fake: FakeOpenAI, dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_API_KEY"))}
    env.update(
        ONETHREAD_DATA_DIR=str(tmp_path),
        DATABASE_URL=dsn,
        OPENAI_BASE_URL=fake.base_url,
        OPENAI_API_KEY="sk-console-test",
        LLM_MODEL="fake-model",
        LOG_LEVEL="WARNING",
    )
    return env


async def test_console_chat_reads_lines_and_prints_replies(
    tmp_path: Path, fake_llm: FakeOpenAI, fresh_dsn: str
) -> None:
    code, out, err = await _chat(
        ["Hello there", "", "My cat is called Miso", "/memory"],
        env=_env(tmp_path, fake_llm, fresh_dsn),
        args=("--user", "tester"),
    )
    assert code == 0, err
    replies = [block for block in out.split("\n\n") if block.strip()]
    assert replies[0] == "echo: Hello there"
    assert replies[1] == "echo: My cat is called Miso"
    assert len(replies) == 3  # the empty line was skipped; /memory answered
    # The conversation persisted: a second run continues it.
    code, out, err = await _chat(
        ["What is my cat called?"],
        env=_env(tmp_path, fake_llm, fresh_dsn),
        args=("--user", "tester"),
    )
    assert code == 0, err
    prompt = "\n".join(m["content"] for m in fake_llm.chat_requests[-1]["messages"])
    assert "My cat is called Miso" in prompt
    assert "sk-console-test" not in err


async def test_a_piped_file_of_72_lines_gets_72_answers(
    tmp_path: Path, fake_llm: FakeOpenAI, fresh_dsn: str
) -> None:
    # The console is the operator's own terminal: the per-user rate limit (8 at once,
    # then 20 a minute by default) does not apply there.
    lines = [f"line {number}" for number in range(72)]
    code, out, err = await _chat(
        lines, env=_env(tmp_path, fake_llm, fresh_dsn), args=("--user", "piped")
    )
    assert code == 0, err
    replies = [block for block in out.split("\n\n") if block.strip()]
    assert replies == [f"echo: {line}" for line in lines]
