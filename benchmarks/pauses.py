"""Stalls of one process's event loop, and the garbage collector's share of them.

`PauseWatch` measures, while it runs: how late a task that sleeps `every` seconds
wakes up (the loop's lag: how long a ready step waited for the loop), and every
collection of the cyclic garbage collector, by generation (each pauses the whole
process).
"""

from __future__ import annotations

import asyncio
import gc
import time
from contextlib import suppress
from typing import Any

GENERATIONS = (0, 1, 2)


class PauseWatch:
    def __init__(self, every: float = 0.005) -> None:
        self._every = every
        self.lag_ms: list[float] = []
        self.gc_ms: dict[int, list[float]] = {g: [] for g in GENERATIONS}
        self._gc_started = 0.0
        self._probe: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._probe = asyncio.create_task(self._sample_lag())

    async def stop(self) -> None:
        with suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._probe is not None:
            self._probe.cancel()
            with suppress(asyncio.CancelledError):
                await self._probe

    def as_dict(self) -> dict[str, Any]:
        return {"lag_ms": self.lag_ms, "gc_ms": {str(g): ms for g, ms in self.gc_ms.items()}}

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_ms[info["generation"]].append((time.perf_counter() - self._gc_started) * 1e3)

    async def _sample_lag(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self._every)
            self.lag_ms.append((time.perf_counter() - asked - self._every) * 1e3)


def gc_summary(parts: list[dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Collections per generation over several processes: how many, their total and
    longest pause (ms)."""
    summary = {}
    for generation in (str(g) for g in GENERATIONS):
        pauses = [ms for part in parts for ms in part[generation]]
        summary[f"gen{generation}"] = {
            "count": len(pauses),
            "total_ms": round(sum(pauses), 1),
            "max_ms": round(max(pauses, default=0.0), 1),
        }
    return summary
