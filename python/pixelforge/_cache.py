"""pixelforge's cache folder: ``$PIXELFORGE_CACHE``, default ``~/.cache/pixelforge`` (the digit
judge's weights, rendered emoji)."""
from __future__ import annotations

import os
import pathlib


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("PIXELFORGE_CACHE", pathlib.Path.home() / ".cache" / "pixelforge"))
