"""The garbage collector, set for a long-running asyncio service.

CPython's cyclic collector pauses the whole process, event loop included, and a full
(generation 2) collection walks every tracked object: after start-up that includes the
imported libraries' hundreds of thousands of objects, which never become garbage.
With about 530 replies streaming, full collections were the event loop's longest
stalls (up to 112 ms; every step of every turn in flight waits for them).

`settle` is called once the service has started: it collects what start-up left
behind, then freezes the survivors (`gc.freeze`), so that no later collection walks
them again. Measured, this halves the full collections' pauses and the loop's longest
stall (docs/benchmarks.md, "Latency"). The thresholds stay CPython's defaults.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Container objects allocated (net of those freed) between two young collections;
CPython's default is 700."""


def settle() -> int:
    """Collect what start-up left behind, exempt the rest from future collections, and
    collect the young generation less often: how many objects are exempt now."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return gc.get_freeze_count()
