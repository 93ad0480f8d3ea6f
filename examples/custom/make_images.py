"""Make the example's images and labels.csv: four sharpness levels of four bundled photos.

The images stand in for a team's own product photos, and the MOS values for what their raters
said (here they simply fall with the blur, 85 to 25, a little apart per photo). The photos are
scikit-image's bundled ones, so this runs offline; the output is the same on every machine.

Run: python examples/custom/make_images.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage import data

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "images"
SIZE = 192
BLUR = (0.0, 1.2, 2.4, 4.0)
"""Gaussian blur radius per level: level 0 is the sharp photo."""
MOS = (85.0, 65.0, 45.0, 25.0)
PHOTOS = {"coffee": data.coffee, "chelsea": data.chelsea, "astronaut": data.astronaut, "rocket": data.rocket}
DEMO = "rocket"
"""Its four levels are the in-context demonstration (split=demo), never judged items."""


def crop(rgb: np.ndarray) -> Image.Image:
    h, w = rgb.shape[:2]
    top, left = (h - SIZE) // 2, (w - SIZE) // 2
    return Image.fromarray(np.ascontiguousarray(rgb[top : top + SIZE, left : left + SIZE]))


def main() -> None:
    IMAGES.mkdir(exist_ok=True)
    rows = []
    for n, (name, load) in enumerate(PHOTOS.items()):
        photo = crop(load())
        for level, (radius, mos) in enumerate(zip(BLUR, MOS, strict=True)):
            image = photo.filter(ImageFilter.GaussianBlur(radius)) if radius else photo
            path = IMAGES / f"{name}-{level}.png"
            image.save(path, optimize=False)
            rows.append(
                {
                    "image": f"images/{path.name}",
                    "mos": f"{mos + 2 * n - 3:.1f}",
                    "attribute": "structure",
                    "group": name,
                    "split": "demo" if name == DEMO else "test",
                }
            )
    with (HERE / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
