"""The fake OpenAI-compatible server in a process of its own, for benchmarks that must
not count its CPU as theirs.

    python -m benchmarks.fake_llm "reply text" [--latency [--seed N --tokens-per-chunk N
        --first-token-median S --first-token-sigma X --first-token-max S
        --tokens-per-second MIN MAX --reply-tokens MIN MAX]] [--in-flight-every S]

Prints its base URL on the first line of stdout and exits when its stdin closes (so it
never outlives its parent). Every chat request is answered with the reply: at once, or
with `--latency` at a hosted model's pace (`fakes.openai_server.LatencyProfile`, whose
defaults the other flags override; the reply's words are repeated to the drawn length).

With `--in-flight-every S` it samples how many chat requests it is answering every S
seconds; each line "in-flight" written to its stdin is answered with one JSON line:
every sample so far as [time.monotonic(), requests] (the clock every process on the
machine shares).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import uvloop

from fakes.openai_server import FakeOpenAI, LatencyProfile

IN_FLIGHT_REQUEST = "in-flight"


async def serve(reply: str, latency: LatencyProfile | None, sample_every: float | None) -> None:
    async with FakeOpenAI(
        embedding_dimensions=384, responder=lambda _: reply, latency=latency
    ) as fake:
        samples: list[tuple[float, int]] = []
        sampler = None
        if sample_every is not None:
            sampler = asyncio.create_task(_sample(fake, samples, sample_every))
        print(fake.base_url, flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == IN_FLIGHT_REQUEST:
                print(json.dumps(samples), flush=True)
        if sampler is not None:
            sampler.cancel()


async def _sample(fake: FakeOpenAI, samples: list[tuple[float, int]], every: float) -> None:
    while True:
        samples.append((round(time.monotonic(), 3), fake.chat_in_flight))
        await asyncio.sleep(every)


def _profile(args: argparse.Namespace) -> LatencyProfile | None:
    if not args.latency:
        return None
    return LatencyProfile(
        first_token_median_s=args.first_token_median,
        first_token_sigma=args.first_token_sigma,
        first_token_max_s=args.first_token_max,
        tokens_per_second=(args.tokens_per_second[0], args.tokens_per_second[1]),
        reply_tokens=(args.reply_tokens[0], args.reply_tokens[1]),
        tokens_per_chunk=args.tokens_per_chunk,
        seed=args.seed,
    )


def _parse(argv: list[str]) -> argparse.Namespace:
    default = LatencyProfile()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fake_llm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reply")
    parser.add_argument("--latency", action="store_true", help="answer at a model's pace")
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--first-token-median", type=float, default=default.first_token_median_s)
    parser.add_argument("--first-token-sigma", type=float, default=default.first_token_sigma)
    parser.add_argument("--first-token-max", type=float, default=default.first_token_max_s)
    parser.add_argument(
        "--tokens-per-second", type=float, nargs=2, default=default.tokens_per_second
    )
    parser.add_argument("--reply-tokens", type=int, nargs=2, default=default.reply_tokens)
    parser.add_argument("--tokens-per-chunk", type=int, default=default.tokens_per_chunk)
    parser.add_argument("--in-flight-every", type=float, help="seconds between samples")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(sys.argv[1:])
    # The lighter loop: its CPU shares the machine.
    uvloop.run(serve(args.reply, _profile(args), args.in_flight_every))
