"""The example's images are made, not stored: make them on the first run (your own data would
already be on disk, and this file would not be needed)."""

from __future__ import annotations

import runpy
from pathlib import Path

HERE = Path(__file__).resolve().parent

if not (HERE / "images" / "astronaut-3.png").exists():
    runpy.run_path(str(HERE / "make_images.py"), run_name="__main__")
