"""The garbage collector, set for a long-running asyncio service.

CPython's cyclic collector pauses the whole process, event loop included, and a full
(generation 2) collection walks every tracked object: after start-up that is the
imported libraries' hundreds of thousands of objects, which never become garbage.
Under load (hundreds of replies streaming) those pauses were the longest stalls of
the event loop, so every step of every turn in flight waited for them
(docs/benchmarks.md, "Latency").

`settle` is called once the service has started: it collects what start-up left
behind, then freezes the survivors (`gc.freeze`), so that no later collection walks
them again. The thresholds are CPython's defaults; what changes is how much each
collection has to walk.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect what start-up left behind and exempt the rest from future collections:
    how many objects are exempt now."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
