from __future__ import annotations

import io
import struct
import subprocess
import sys
from datetime import date, timedelta

import numpy as np

from core.charts import HEIGHT_PX, WIDTH_PX, daily_activity_png, render_daily_activity
from core.storage.stats import DailyCount

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _series(days: int = 30) -> list[DailyCount]:
    first = date(2026, 3, 1)
    return [
        DailyCount(first + timedelta(days=i), messages=(i * 7) % 23, active_users=(i * 3) % 5)
        for i in range(days)
    ]


def _size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _decode(png: bytes) -> np.ndarray[tuple[int, ...], np.dtype[np.float32]]:
    from matplotlib.image import imread

    pixels: np.ndarray[tuple[int, ...], np.dtype[np.float32]] = imread(io.BytesIO(png), "png")
    return pixels


async def test_png_is_valid_and_of_the_promised_size() -> None:
    png = await daily_activity_png(_series())
    assert png.startswith(PNG_MAGIC)
    assert _size(png) == (WIDTH_PX, HEIGHT_PX)
    pixels = _decode(png)
    assert pixels.shape[:2] == (HEIGHT_PX, WIDTH_PX)
    # Something was drawn: not one flat colour, and both bar colours appear.
    assert pixels.reshape(-1, pixels.shape[2]).std(axis=0).max() > 0.05
    rgb = np.round(pixels[..., :3] * 255).astype(int)
    for colour in ((0x4C, 0x72, 0xB0), (0xDD, 0x84, 0x52)):
        assert (np.abs(rgb - colour).sum(axis=2) < 6).sum() > 100


def test_empty_and_all_zero_series_render() -> None:
    for series in ([], [DailyCount(date(2026, 3, 1) + timedelta(days=i), 0, 0) for i in range(30)]):
        png = render_daily_activity(series)
        assert png.startswith(PNG_MAGIC) and _size(png) == (WIDTH_PX, HEIGHT_PX)
        assert _decode(png).shape[:2] == (HEIGHT_PX, WIDTH_PX)


def test_the_engine_does_not_import_matplotlib() -> None:
    code = "import sys, core.engine, core.charts; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
