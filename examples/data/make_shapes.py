"""Generate ``shapes/``: an ImageFolder of drawn circles, squares and triangles (seeded).

One sub-folder per class, 60 images each, PNG and JPEG, 24..64 pixels, mostly colour with some
grey ones: the mixed folder a user might have. Run: ``python examples/data/make_shapes.py``,
then ``mltune tune --config examples/images.yaml``.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

rng = np.random.default_rng(3)
root = Path(__file__).with_name("shapes")
for shape in ("circle", "square", "triangle"):
    (root / shape).mkdir(parents=True, exist_ok=True)
    for i in range(60):
        mode, size = ("L" if i % 4 == 0 else "RGB"), int(rng.integers(24, 65))
        colour = 255 if mode == "L" else tuple(int(c) for c in rng.integers(120, 256, 3))
        image = Image.new(mode, (size, size), 0 if mode == "L" else (0, 0, 0))
        half = size * rng.uniform(0.2, 0.4)
        cx, cy = size * rng.uniform(0.4, 0.6), size * rng.uniform(0.4, 0.6)
        pen = ImageDraw.Draw(image)
        if shape == "circle":
            pen.ellipse([cx - half, cy - half, cx + half, cy + half], fill=colour)
        elif shape == "square":
            pen.rectangle([cx - half, cy - half, cx + half, cy + half], fill=colour)
        else:
            pen.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)],
                        fill=colour)
        image.save(root / shape / f"{shape}_{i:02d}.{'jpg' if i % 3 == 0 else 'png'}")
print(f"wrote {root}")
