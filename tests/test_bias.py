"""`nv data stylize`: the style transfer's two steps against their definitions, the stylised tree and its record, and
the refusals that keep a user's files safe."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nvcli.data.registry import StylizeOptions
from nvcli.data.stylize import COLUMNS, LISTING, _to_lab, match_colours, stylize_tree, swap_low_frequencies


def _image(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.3, 0.7, (size, size, 3))


def test_the_low_frequencies_are_the_style_and_the_rest_the_content() -> None:
    content, style = _image(0), _image(1)
    mixed = swap_low_frequencies(content, style, beta=0.1)  # a window of half-side 2: 5 x 5 frequencies
    spectra = [np.fft.fftshift(np.fft.fft2(x, axes=(0, 1)), axes=(0, 1)) for x in (mixed, content, style)]
    low = (slice(10, 15), slice(10, 15))
    assert np.abs(spectra[0])[low] == pytest.approx(np.abs(spectra[2])[low], abs=0.3)
    high = np.ones((24, 24), bool)
    high[low] = False
    assert np.abs(spectra[0][high] - spectra[1][high]).max() < 0.3  # amplitude and phase: the content's
    assert swap_low_frequencies(content, content, beta=0.3) == pytest.approx(content)


def test_colour_matching_gives_the_style_colour_statistics() -> None:
    content, style = _image(0), _image(1) * np.array([1.0, 0.6, 0.3])
    lab = _to_lab(match_colours(content, style))
    assert lab.mean((0, 1)) == pytest.approx(_to_lab(style).mean((0, 1)), abs=1e-6)
    assert lab.std((0, 1)) == pytest.approx(_to_lab(style).std((0, 1)), abs=1e-6)


def _tree(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    for folder, count in (("data/train/cat", 2), ("data/train/dog", 1), ("styles/cat", 1), ("styles/dog", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / folder / f"{i}.png")
    return root / "data", root / "styles"


def test_stylize_writes_the_tree_and_which_style_made_each_image(tmp_path: Path, nv) -> None:
    data, styles = _tree(tmp_path)
    code, _, err = nv("data", "stylize", "--data-dir", data, "--styles", styles, "--out", tmp_path / "out",
                      "--per-image", 2, "--seed", 3)
    assert code == 0, err
    listing = pd.read_csv(tmp_path / "out" / LISTING, keep_default_na=False)
    assert list(listing.columns) == COLUMNS and len(listing) == 3 * 2
    assert sorted(set(listing["content"])) == ["train/cat/0.png", "train/cat/1.png", "train/dog/0.png"]
    for row in listing.itertuples():
        assert Image.open(tmp_path / "out" / row.image).size == (30, 20)
        assert row.image.startswith(row.content.rsplit("/", 1)[0] + "/")
        assert row.shape == Path(row.content).parent.name and row.texture == Path(row.style).parts[0]
    again = stylize_tree(data, styles, tmp_path / "again", StylizeOptions(per_image=2, seed=3))
    assert again.equals(listing)  # the seed decides which style makes which image
    assert f"{(listing['texture'] != listing['shape']).sum()} are cue-conflict images" in err


def test_stylize_never_writes_over_or_inside_the_inputs(tmp_path: Path, nv) -> None:
    data, styles = _tree(tmp_path)
    for out, inside in ((data / "styled", "data_dir"), (styles, "styles"), (tmp_path, "data_dir")):
        code, _, err = nv("data", "stylize", "--data-dir", data, "--styles", styles, "--out", out)
        assert code == 2 and "lies in or holds" in err and f"--{inside.replace('_', '-')}" in err, err
    missing = tmp_path / "missing"
    code, _, err = nv("data", "stylize", "--data-dir", missing, "--styles", styles, "--out", tmp_path / "o")
    assert code == 2 and "is not a directory" in err
    (tmp_path / "empty").mkdir()
    code, _, err = nv("data", "stylize", "--data-dir", data, "--styles", tmp_path / "empty", "--out", tmp_path / "o")
    assert code == 2 and "holds no image files" in err
    code, _, err = nv("data", "stylize", "--data-dir", data, "--styles", styles, "--out", tmp_path / "o", "--beta", 0.9)
    assert code == 2 and "beta 0.9 is not valid" in err and not (tmp_path / "o").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, _, err = nv("data", "stylize", "--data-dir", data, "--styles", styles, "--out", mine)
    assert code == 2 and "not empty" in err
    assert nv("data", "stylize", "--data-dir", data, "--styles", styles, "--out", tmp_path / "o").code == 0
    (tmp_path / "o" / "notes.txt").write_text("mine")
    assert nv("data", "stylize", "--data-dir", data, "--styles", styles, "--out", tmp_path / "o", "--force").code == 0
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine" and (tmp_path / "o" / LISTING).is_file()


def test_nv_bias_reads_no_listed_file_through_a_link_out_of_its_folder(nv, tmp_path: Path) -> None:
    """docs/bias.md: a listed path that leads outside --conflicts DIR, through a linked file or folder, is refused."""
    assert nv("convert", "--arch", "smallcnn", "--classes", "alpha,beta,gamma,delta", "--image-size", 32,
              "--name", "cues", "--runs-dir", tmp_path / "runs").code == 0
    outside, folder = tmp_path / "outside", tmp_path / "conflicts"
    for path in (outside / "secret.png", folder / "own.png"):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(path)
    (folder / "inside-link.png").symlink_to(folder / "own.png")
    (folder / "file-link.png").symlink_to(outside / "secret.png")
    (folder / "folder-link").symlink_to(outside, target_is_directory=True)
    run = tmp_path / "runs" / "cues"

    def bias(image: str) -> tuple[int, str]:
        (folder / "conflicts.csv").write_text(f"image,shape,texture\nown.png,alpha,beta\n{image},gamma,delta\n")
        result = nv("bias", "--run", run, "--conflicts", folder, "--device", "cpu")
        return result.code, result.err

    assert bias("inside-link.png")[0] == 0  # a link that stays inside the folder is read like any file
    for image in ("file-link.png", "folder-link/secret.png"):
        code, err = bias(image)
        lines = [line for line in err.strip().splitlines() if not line.startswith("run: ")]
        assert code == 2 and "Traceback" not in err and len(lines) == 1, err
        assert lines[0] == (f"error: '{folder / 'conflicts.csv'}' row 3 names '{folder / image}', which leads through "
                            f"a link to '{outside / 'secret.png'}', outside '{folder}'; the files of this folder "
                            "must be inside it")
    (folder / "conflicts.csv").unlink()
    (outside / "conflicts.csv").write_text("image,shape,texture\nown.png,alpha,beta\n")
    (folder / "conflicts.csv").symlink_to(outside / "conflicts.csv")
    code, err = nv("bias", "--run", run, "--conflicts", folder, "--device", "cpu")[:3:2]
    assert code == 2 and f"names '{folder / 'conflicts.csv'}', which leads through a link to" in err
