"""`bot.heap.settle` in a process of its own (it changes the whole process's collector)."""

from __future__ import annotations

import json
import subprocess
import sys

from bot.heap import YOUNG_THRESHOLD

_SETTLE = """
import gc, json
import bot.run  # the service's imports: the heap settle freezes
from bot.heap import settle
before = gc.get_threshold()
frozen = settle()
print(json.dumps([before, gc.get_threshold(), frozen, gc.get_freeze_count()]))
"""


def test_settling_freezes_the_start_up_heap_and_collects_the_young_less_often() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SETTLE], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, frozen, count = json.loads(done.stdout)
    assert before[0] < YOUNG_THRESHOLD
    assert after == [YOUNG_THRESHOLD, before[1], before[2]]
    assert frozen == count > 100_000
