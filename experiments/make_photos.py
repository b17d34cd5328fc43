"""A small real-image ImageFolder fixture: random crops of photos that ship inside PyPI packages.

Classes = source photo (scikit-image's skimage.data and scikit-learn's load_sample_images).
Training crops come from the left 65% of each photo, validation crops from the right 35%, so
validation pixels are never training pixels.
usage: PYTHONPATH=<scikit-image installed with pip install --target DIR> \
    python experiments/make_photos.py OUT [train_per_class] [val_per_class] [size]
"""
import sys
from pathlib import Path

import numpy as np
import skimage.data as d
from PIL import Image
from sklearn.datasets import load_sample_images

out = Path(sys.argv[1])
n_train = int(sys.argv[2]) if len(sys.argv) > 2 else 200
n_val = int(sys.argv[3]) if len(sys.argv) > 3 else 50
size = int(sys.argv[4]) if len(sys.argv) > 4 else 64
sk = load_sample_images()
photos = {name: getattr(d, name)() for name in ("astronaut", "coffee", "chelsea", "rocket",
                                                 "immunohistochemistry", "hubble_deep_field")}
photos["china"], photos["flower"] = sk.images
rng = np.random.default_rng(0)
for split, n, (lo, hi) in (("train", n_train, (0.0, 0.65)), ("val", n_val, (0.65, 1.0))):
    for name, im in photos.items():
        im = im[..., :3]
        h, w = im.shape[:2]
        x0, x1 = int(lo * w), int(hi * w)
        folder = out / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            s = int(rng.uniform(0.2, 0.35) * min(h, w))
            s = min(s, x1 - x0)
            y = rng.integers(0, h - s + 1)
            x = rng.integers(x0, x1 - s + 1)
            crop = Image.fromarray(np.ascontiguousarray(im[y:y + s, x:x + s])).resize((size, size), Image.BILINEAR)
            if rng.random() < 0.5:
                crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(folder / f"{i:04d}.png")
print(out, {k: v.shape for k, v in photos.items()})
