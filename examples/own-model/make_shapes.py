"""Write a small image data set in the `--dataset folder` layout: one folder per class.

    python make_shapes.py OUT [--per-class N] [--seed S]

Four classes of 32x32 grayscale PNGs (circle, square, cross, stripes), each drawn at a
random place, size and brightness over noise: a stand-in for your own photos.
"""
import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("circle", "square", "cross", "stripes")


def draw(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(10, 22, 2)
    r = rng.uniform(5, 9)
    if kind == "circle":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    elif kind == "square":
        mask = (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8)
    elif kind == "cross":
        mask = ((abs(yy - cy) <= 1.5) & (abs(xx - cx) <= r)) | ((abs(xx - cx) <= 1.5) & (abs(yy - cy) <= r))
    else:
        mask = ((xx + rng.integers(4)) // 3) % 2 == 0
    img = rng.normal(40, 20, (size, size)) + mask * rng.uniform(120, 200)
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    for kind in CLASSES:
        folder = Path(a.out) / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(a.per_class):
            Image.fromarray(draw(kind, rng)).save(folder / f"{i:04d}.png")
    print(f"wrote {a.per_class * len(CLASSES)} images of {len(CLASSES)} classes to {a.out}")


if __name__ == "__main__":
    main()
