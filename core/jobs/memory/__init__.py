"""The memory job and its parts: extraction, reconciliation, summary (docs/jobs.md)."""

from core.jobs.memory.job import ApplyHook, MemoryJob

__all__ = ["ApplyHook", "MemoryJob"]
