"""Image datasets: the synthetic mechanisms, and the on-disk loaders on fixture trees in the real layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from layouts import places_fixture, write_image

from nvcli.data.registry import load_data
from nvcli.data.shapes import CLASSES, COLOURS, DROPPED, PURE, SHAPES, TEXTURES, WORLDS, render
from nvcli.errors import NvError


def test_shapes_are_deterministic_balanced_and_masks_match_pixels() -> None:
    a, b = render(90, 32, seed=3), render(90, 32, seed=3)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.bincount(a.labels).tolist() == [10] * 9
    for i in range(90):
        name = CLASSES[a.labels[i]]
        obj = a.masks["object"][i] > 0
        colour = a.masks["color"][i]
        texture = a.masks["texture"][i]
        assert np.array_equal(obj, texture > 0)  # object and texture masks cover the same pixels
        if name in PURE:  # colour classes: the object's pixels carry that colour
            assert set(np.unique(colour[obj])) == {COLOURS.index(name) + 1}
            dominant = int(np.argmax(a.images[i][obj].mean(axis=0)))
            assert dominant == list(PURE).index(name)
        if name in SHAPES:
            assert set(np.unique(a.masks["object"][i][obj])) == {SHAPES.index(name) + 1}
            assert set(np.unique(texture[obj])) == {TEXTURES.index("solid") + 1}
        dropped = [COLOURS.index(d) + 1 for d in DROPPED]
        if name in TEXTURES:
            assert set(np.unique(texture[obj])) == {TEXTURES.index(name) + 1}
            if colour[obj][0] not in dropped:
                assert len(np.unique(colour[obj])) == 2  # a pattern in two colours
        if colour[obj][0] in dropped:  # a removed channel: zero in every pixel of the image
            channel = dropped.index(colour[obj][0])
            assert name not in PURE and (a.images[i][..., channel] == 0).all()
        assert (colour[~obj] == COLOURS.index("dark") + 1).all()


def _lacks_a_channel(images: np.ndarray) -> np.ndarray:
    """[N] whether some channel is zero in every pixel of the image (uint8 [N, H, W, 3])."""
    return (images.reshape(len(images), -1, 3).max(axis=1) == 0).any(axis=1)


def test_validation_images_keep_every_channel_so_zeroing_one_gives_a_training_image() -> None:
    bundle = load_data("shapes", {"image_size": 32, "train_per_class": 40, "val_per_class": 40})
    split = {name: (np.stack([(x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for x, _ in part]),
                    part.labels.numpy()) for name, part in (("train", bundle.train), ("val", bundle.val))}
    colour = np.isin(split["train"][1], [CLASSES.index(c) for c in PURE])
    train_lacking = _lacks_a_channel(split["train"][0])
    assert not _lacks_a_channel(split["val"][0]).any()
    assert not train_lacking[colour].any()  # colour classes never lose their channel
    assert 0.4 < train_lacking[~colour].mean() < 0.6  # texture and shape classes: DROP_SHARE of them do
    old = render(180, 32, seed=1_000_003, world=WORLDS[1], drop_share=WORLDS[1].val_drop_share)
    assert _lacks_a_channel(old.images).any()  # world 1 (older runs): validation images lost channels too


@pytest.mark.parametrize("world", [1, 2])
def test_world_geometry_object_radius_and_pattern_cell(world: int) -> None:
    size, geometry = 64, WORLDS[world]
    rendered = render(360, size, seed=5, world=geometry)
    circles = rendered.masks["object"] == SHAPES.index("circle") + 1
    radius = np.sqrt(circles.sum(axis=(1, 2))[circles.any(axis=(1, 2))] / np.pi) / size
    lo, hi = geometry.radius
    assert radius.min() > lo - 0.02 and radius.max() < hi + 0.02  # pixel rounding
    assert radius.max() - radius.min() > 0.5 * (hi - lo)  # sizes spread over the range
    # Stripes of width w cross a row at random angles: |cos| / w edges per pixel, 2 / (pi w) on average.
    striped = np.flatnonzero(rendered.labels == CLASSES.index("striped"))
    obj, colour = rendered.masks["object"][striped] > 0, rendered.masks["color"][striped]
    two = np.array([len(np.unique(c[o])) == 2 for c, o in zip(colour, obj)])  # not the ones that lost a channel
    inside = (obj[:, :, 1:] & obj[:, :, :-1])[two]
    edges = (colour[two][:, :, 1:] != colour[two][:, :, :-1]) & inside
    width = 2 / (np.pi * edges.sum() / inside.sum()) / size
    assert geometry.cell[0] - 0.01 < width < geometry.cell[1] + 0.01


def test_shapes_world_is_checked() -> None:
    assert load_data("shapes", {"world": 1}).info["world"] == 1
    with pytest.raises(NvError, match="shapes world 3 is not valid; use 1 or 2"):
        load_data("shapes", {"world": 3})


def test_places_loader_reads_a_chosen_subset(tmp_path: Path) -> None:
    places_fixture(tmp_path)
    bundle = load_data("places10", {"data_dir": str(tmp_path), "classes": ["barn", "aquarium"], "image_size": 32})
    assert bundle.classes == ["aquarium", "barn"]  # labels follow the dataset's own order
    assert len(bundle.train) == 6 and len(bundle.val) == 2
    x, y = bundle.val[0]
    assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
    # labels follow Places365's order: aquarium (index 0, red 0) -> 0, barn (index 2, red 120) -> 1
    reds = {bundle.val[i][1]: float(bundle.val[i][0][0].mean()) * 255 for i in range(2)}
    assert reds[0] == pytest.approx(0, abs=3) and reds[1] == pytest.approx(120, abs=3)  # JPEG is lossy


def test_places_errors_name_what_is_wrong(tmp_path: Path) -> None:
    places_fixture(tmp_path)
    with pytest.raises(NvError, match="Did you mean 'barn'"):
        load_data("places10", {"data_dir": str(tmp_path), "classes": ["barns"]})
    with pytest.raises(NvError, match="'aquarium'"):  # default Places10 includes classes the fixture lacks
        (tmp_path / "places365_val.txt").write_text("Places365_val_00000002.jpg 2\n")
        load_data("places10", {"data_dir": str(tmp_path), "classes": ["barn", "aquarium"]})
    (tmp_path / "places365_val.txt").unlink()
    with pytest.raises(NvError, match="places365_val.txt' is missing"):
        load_data("places10", {"data_dir": str(tmp_path), "classes": ["barn"]})


def test_imagefolder_errors(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "cat" / "1.png", (1, 2, 3))
    (tmp_path / "train" / "dog").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(NvError, match="class 'dog' has no images"):
        load_data("imagefolder", {"data_dir": str(tmp_path)})
    corrupt = tmp_path / "train" / "dog" / "bad.png"
    corrupt.write_bytes(b"not a png")
    write_image(tmp_path / "val" / "cat" / "1.png", (1, 2, 3))
    write_image(tmp_path / "val" / "dog" / "1.png", (1, 2, 3))
    bundle = load_data("imagefolder", {"data_dir": str(tmp_path)})
    with pytest.raises(NvError, match="cannot decode image .*bad.png"):
        bundle.train[1]


def test_shapes_splits_render_only_when_read() -> None:
    bundle = load_data("shapes", {"image_size": 16, "train_per_class": 5, "val_per_class": 2})
    assert len(bundle.train) == 45 and len(bundle.val) == 18
    x, _ = bundle.val[0]
    assert x.shape == (3, 16, 16)
    assert "_arrays" not in vars(bundle.train)  # reading validation samples never renders the training split
    assert np.array_equal(bundle.val.labels.numpy(), render(18, 16, seed=1_000_003).labels)


def test_a_missing_data_dir_is_named_by_its_python_parameter() -> None:
    with pytest.raises(NvError, match="dataset 'imagefolder' needs data_dir: ") as err:
        load_data("imagefolder", {})
    assert err.value.params == ("data_dir",) and "--" not in str(err.value)
