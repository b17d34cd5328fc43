"""Run `nv data stylize` on photos shipped inside installed packages and draw docs/figures/stylize_examples.png.

Content: four scikit-image sample photos (astronaut, chelsea, coffee, rocket; one class folder each, two 160 px crops
per photo); styles: six texture-like sample photos (brick, grass, gravel, hubble_deep_field, ihc, retina) and
matplotlib's grace_hopper. scikit-image is not a dependency: install it aside (pip install --target DIR scikit-image);
only its image files are read.
usage: python experiments/stylize_figure.py SKIMAGE_DATA_DIR WORK_DIR [figure.png]
"""
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

data, work = Path(sys.argv[1]), Path(sys.argv[2])
figure = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("docs/figures/stylize_examples.png")
rng = np.random.default_rng(0)


def crops(path: Path, n: int, side: int) -> list[Image.Image]:
    image = Image.open(path).convert("RGB")
    w, h = image.size
    out = []
    for _ in range(n):
        s = int(min(w, h) * rng.uniform(0.5, 0.8))
        x, y = rng.integers(0, w - s + 1), rng.integers(0, h - s + 1)
        out.append(image.crop((x, y, x + s, y + s)).resize((side, side), Image.Resampling.BILINEAR))
    return out


for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"):
    folder = work / "photos" / "val" / Path(name).stem
    folder.mkdir(parents=True, exist_ok=True)
    for i, crop in enumerate(crops(data / name, 2, 160)):
        crop.save(folder / f"{i}.png")
styles = work / "styles"
styles.mkdir(parents=True, exist_ok=True)
for name in ("brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg"):
    Image.open(data / name).convert("RGB").save(styles / f"{Path(name).stem}.png")
hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
Image.open(hopper).convert("RGB").save(styles / "grace_hopper.png")
out = work / "stylised"
subprocess.run([sys.executable, "-m", "nvcli", "data", "stylize", "--data-dir", str(work / "photos"), "--styles",
                str(styles), "--out", str(out), "--per-image", "2", "--beta", "0.05", "--force"], check=True)
listed = [line.split(",") for line in (out / "stylize.csv").read_text().splitlines()[1:]]
rows = list({row[2]: row for row in listed[::-1]}.values())[:4]  # one example of each of four styles
fig = Figure(figsize=(7.5, 2.1 * len(rows)), layout="constrained")
axes = fig.subplots(len(rows), 3)
for row, (image, content, style, *_) in zip(axes, rows):
    for ax, path, label in zip(row, (work / "photos" / content, styles / style, out / image),
                               (f"content: {content}", f"style: {style}", "stylised")):
        ax.imshow(Image.open(path).convert("RGB"))
        ax.set_title(label, fontsize=8)
        ax.axis("off")
fig.suptitle("nv data stylize: FDA low-frequency amplitude swap (beta 0.05) + l-alpha-beta colour matching", fontsize=9)
figure.parent.mkdir(parents=True, exist_ok=True)
fig.savefig(figure, dpi=56)
Image.open(figure).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(figure, optimize=True)
print(f"wrote {figure}")
