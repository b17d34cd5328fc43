"""Network Dissection: the Broden layout, thresholds, IoU and the concept–class map, against hand-made truth."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nvcli.analysis.dissect.concepts import CLASS_COLUMNS, concepts_classes, concepts_units
from nvcli.analysis.dissect.quantile import unit_thresholds
from nvcli.analysis.dissect.tally import UNIT_COLUMNS, dissect, tally_units
from nvcli.data.broden import BrodenProbe, collate_probe, decode_mask, write_broden
from nvcli.errors import NvError
from nvcli.fs.atomic import save_figure
from nvcli.plots.concepts import concept_figure


def id_images(n: int, h: int, w: int) -> np.ndarray:
    """uint8 images whose pixel (0, 0) encodes the image's index as R + 256*G (PNG keeps it exact)."""
    images = np.zeros((n, h, w, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    images[:, 0, 0, 1] = np.arange(n) // 256
    return images


def lookup(*layers: torch.Tensor):
    """A maps_fn returning, per layer, the prepared maps [N, C, h, w] of the images it is given."""

    def maps_fn(images: torch.Tensor) -> list[torch.Tensor]:
        ids = (images[:, 0, 0, 0] * 255).round().long() + 256 * (images[:, 1, 0, 0] * 255).round().long()
        return [layer[ids] for layer in layers]

    return maps_fn


# --- hand-computed IoU -------------------------------------------------------------------------

def test_iou_matches_hand_computation(tmp_path):
    # 3 images 8x8, masks 4x4. object: ball=1, box=2; scene (image-level): indoor=3.
    obj = np.zeros((3, 4, 4), np.int64)
    obj[0, 0:2, :] = 1  # ball: 8 px
    obj[0, 2:4, 0:2] = 2  # box: 4 px
    obj[1, :, 0:2] = 2  # box: 8 px; image 2 has no object labels at all
    write_broden(tmp_path / "p", id_images(3, 8, 8), {"object": ["ball", "box"], "scene": ["indoor"]},
                 masks={"object": obj}, image_labels={"scene": [[1], [], [1]]})
    probe = BrodenProbe(tmp_path / "p")
    assert {n: (lab.name, lab.category) for n, lab in probe.labels.items()} == {
        1: ("ball", "object"), 2: ("box", "object"), 3: ("indoor", "scene")}

    maps = torch.zeros(3, 2, 4, 4)
    a, b = maps[:, 0], maps[:, 1]
    a[0, 0, :] = 1; a[0, 2, 0] = 1; a[1, 0, :] = 1; a[2, 3, 2:] = 1  # 11 active of 48
    b[0, 2:4, 0:2] = 1; b[0, 3, 3] = 1; b[2, 0, :] = 1  # 9 active of 48
    # quantile 0.25: ranks 35 and 36 of 48 ascending values are 0 for both units, so threshold 0
    # and the active pixels are exactly the 1s (strict >).
    thr = unit_thresholds(lookup(maps), probe, quantile=0.25)
    assert thr.tolist() == [0.0, 0.0]
    tally = tally_units(lookup(maps), probe, thr)
    iou = tally.iou()
    # union = unit's active px in images having a label of the category + label px - intersection.
    # Unit a: active in object images (0, 1) = 5 + 4; in scene images (0, 2) = 5 + 2.
    expected_a = [4 / (9 + 8 - 4), 3 / (9 + 12 - 3), 7 / (7 + 32 - 7)]
    # Unit b: active in object images = 5 + 0; in scene images = 5 + 4.
    expected_b = [0 / (5 + 8 - 0), 4 / (5 + 12 - 4), 9 / (9 + 32 - 9)]
    torch.testing.assert_close(iou, torch.tensor([expected_a, expected_b], dtype=torch.float64))
    assert tally.active.tolist() == [11, 9]

    table = tally.table(iou_threshold=0.3)
    assert list(table.columns) == UNIT_COLUMNS
    assert table["concept"].tolist() == ["ball", "box"]
    assert table["category"].tolist() == ["object", "object"]
    assert table["iou"].tolist() == pytest.approx([4 / 13, 4 / 13])
    assert table["interpretable"].tolist() == [True, True]


# --- units built to detect known concepts ------------------------------------------------------

def concept_probe(path):
    """200 images 16x16, masks 8x8; each label covers 64 of 12,800 mask pixels = the default 0.5%."""
    n = 200
    color = np.zeros((n, 8, 8), np.int64)
    obj = np.zeros((n, 8, 8), np.int64)
    color[0:4, 0:4, 0:4] = 1  # red
    color[4:8, 4:8, 4:8] = 2  # green
    obj[8:12, 0:4, 4:8] = 1  # square
    texture = [[1] if i == 12 else [] for i in range(n)]  # striped, the whole image
    write_broden(path, id_images(n, 16, 16), {"color": ["red", "green"], "object": ["square"],
                                              "texture": ["striped"]},
                 masks={"color": color, "object": obj}, image_labels={"texture": texture})
    indicators = torch.stack([torch.from_numpy(color == 1), torch.from_numpy(color == 2), torch.from_numpy(obj == 1),
                              torch.from_numpy(np.arange(n) == 12)[:, None, None].expand(n, 8, 8)], 1).float()
    g = torch.Generator().manual_seed(0)
    units = torch.where(indicators > 0, 1.0, 0.5 * torch.rand(indicators.shape, generator=g))
    noise = torch.rand(n, 2, 8, 8, generator=g)
    coarse = torch.rand(n, 1, 4, 4, generator=g)  # upsampled to the masks
    return BrodenProbe(path), lookup(units, noise, coarse)


def test_units_firing_on_concepts_get_them_and_noise_does_not(tmp_path):
    probe, maps_fn = concept_probe(tmp_path / "p")
    table = dissect(maps_fn, probe)
    assert table["layer"].tolist() == [0, 0, 0, 0, 1, 1, 2]
    assert table["channel"].tolist() == [0, 1, 2, 3, 0, 1, 0]
    found = table.iloc[:4]
    assert found["concept"].tolist() == ["red", "green", "square", "striped"]
    assert found["category"].tolist() == ["color", "color", "object", "texture"]
    assert (found["iou"] > 0.9).all() and found["interpretable"].all()
    noise = table.iloc[4:]
    assert (noise["iou"] < 0.04).all() and not noise["interpretable"].any()


def test_batch_size_does_not_change_the_result(tmp_path):
    probe, maps_fn = concept_probe(tmp_path / "p")
    calls = []
    one = dissect(maps_fn, probe, batch_size=1, progress=lambda phase, done, total: calls.append((done, total)))
    many = dissect(maps_fn, probe, batch_size=64)
    pd.testing.assert_frame_equal(one, many)
    assert calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == list(range(1, len(calls) + 1))


# --- layout round trip -------------------------------------------------------------------------

def test_write_read_round_trip(tmp_path):
    n, rng = 4, np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 10, 12, 3), dtype=np.uint8)
    object_names = ["sky"] + [f"thing{i}" for i in range(1, 300)]
    concepts = {"color": ["red", "sky"], "object": object_names, "part": ["wheel", "door"], "scene": ["beach"]}
    color = np.full((n, 5, 6), 2)  # sky covers every colour mask entirely ...
    color[:, 0, 0] = 1
    obj = rng.integers(1, 300, (n, 5, 6))
    obj[:, 0, :2] = 1  # ... and only 2 px of each object mask
    obj[0, 4, 5] = 300  # thing299: global number 301 = R 45 + 256 * G 1
    part = np.zeros((n, 2, 5, 6), np.int64)
    part[:, 0, :3] = 1  # two overlapping layers
    part[:, 1, 1:] = 2
    write_broden(tmp_path / "p", images, concepts, masks={"color": color, "object": obj, "part": part},
                 image_labels={"scene": [[1], [], [1], []]})

    number = {"red": 1, "sky": 2, **{f"thing{i}": i + 2 for i in range(1, 300)}, "wheel": 302, "door": 303,
              "beach": 304}
    probe = BrodenProbe(tmp_path / "p")
    assert probe.categories == ["color", "object", "part", "scene"]
    name_of = {v: k for k, v in number.items()}
    used = {1, 2, 302, 303, 304} | {number[object_names[c - 1]] for c in np.unique(obj)}
    assert 301 in used and {n: lab.name for n, lab in probe.labels.items()} == {n: name_of[n] for n in used}
    assert probe.labels[2].category == "color"  # sky's coverage is highest in color
    assert BrodenProbe(tmp_path / "p", categories=["object", "scene"]).labels[2].category == "object"

    index = pd.read_csv(tmp_path / "p" / "index.csv", dtype=str, keep_default_na=False)
    assert list(index.columns) == ["image", "split", "ih", "iw", "sh", "sw", "color", "object", "part",
                                   "material", "scene", "texture"]
    raw = np.asarray(Image.open(tmp_path / "p" / "images" / index["object"][0]))
    assert raw[4, 5].tolist() == [45, 1, 0]
    assert index["part"][0].count(";") == 1 and index["scene"].tolist() == ["304", "", "304", ""]

    lut_obj = np.array([0] + [number[name] for name in object_names])
    for i in range(n):
        item = probe[i]
        assert torch.equal(item["image"], torch.from_numpy(images[i]).permute(2, 0, 1).float() / 255)
        masks = item["masks"]
        assert masks["color"].tolist() == [np.where(color[i] == 1, 1, 2).tolist()]
        assert masks["object"].tolist() == [lut_obj[obj[i]].tolist()]
        assert masks["part"].tolist() == [np.where(part[i, 0] == 1, 302, 0).tolist(),
                                          np.where(part[i, 1] == 2, 303, 0).tolist()]
        scene = [[[304] * 6] * 5] if i in (0, 2) else []  # image-level: the whole mask
        assert masks["scene"].tolist() == scene
    batch = collate_probe([probe[0], probe[1]])
    assert batch["images"].shape == (2, 3, 10, 12) and len(batch["masks"]) == 2


def test_writer_streams_and_reader_resizes(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    masks = rng.integers(0, 3, (3, 4, 4))
    write_broden(tmp_path / "p", (im for im in images), {"object": ["a", "b"]},
                 masks={"object": (m for m in masks)}, split=["train", "val", "val"])
    probe = BrodenProbe(tmp_path / "p", split="val", image_size=(6, 10))
    assert len(probe) == 2
    assert probe.image(0).shape == (3, 6, 10)  # resized for the network ...
    assert probe.masks(0)["object"].tolist() == [masks[1].tolist()]  # ... masks kept at their size
    with pytest.raises(ValueError, match=r"masks\['object'\] ended after 2 images"):
        write_broden(tmp_path / "q", images, {"object": ["a", "b"]}, masks={"object": masks[:2]})


def test_nan_maps_are_refused(tmp_path):
    write_broden(tmp_path / "p", id_images(2, 4, 4), {"color": ["x"]})
    with pytest.raises(NvError, match="layer 1 contain NaN"):
        unit_thresholds(lookup(torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), float("nan"))),
                        BrodenProbe(tmp_path / "p"))


def test_mask_decoding_widens_before_multiplying(tmp_path):
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0] = [255, 255, 0]
    rgb[0, 1] = [4, 1, 0]
    Image.fromarray(rgb).save(tmp_path / "m.png")
    assert decode_mask(tmp_path / "m.png").tolist() == [[65535, 260, 0]]


def test_masks_at_image_size_are_halved(tmp_path):
    mask = np.zeros((1, 6, 6), np.int64)
    mask[0, 2:4, 2:4] = 1
    write_broden(tmp_path / "p", id_images(1, 6, 6), {"object": ["dot"]}, masks={"object": mask})
    probe = BrodenProbe(tmp_path / "p")
    # Nearest neighbour at source pixel centres 1, 3, 5 of each axis.
    assert probe.masks(0)["object"][0].tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]


# --- thresholds --------------------------------------------------------------------------------

@pytest.mark.parametrize("budget", [0, 1 << 22])  # 0: histogram rounds all the way down to one key
def test_thresholds_are_exact_quantiles(tmp_path, budget):
    n = 23
    write_broden(tmp_path / "p", id_images(n, 4, 4), {"color": ["x"]})
    g = torch.Generator().manual_seed(3)
    fine = torch.randn(n, 3, 5, 5, generator=g)
    fine[:, 1] = fine[:, 1].round()  # ties
    fine[:, 2] = fine[:, 2] * 1e-4 - 7  # a narrow, negative range
    coarse = torch.rand(n, 2, 2, 3, generator=g)
    probe = BrodenProbe(tmp_path / "p")
    for q in (0.005, 0.1, 0.5):
        thr = unit_thresholds(lookup(fine, coarse), probe, quantile=q, batch_size=5, collect_budget=budget)
        values = [fine[:, c].flatten() for c in range(3)] + [coarse[:, c].flatten() for c in range(2)]
        expected = torch.stack([torch.quantile(v.double(), 1 - q) for v in values]).float()
        torch.testing.assert_close(thr, expected, rtol=2 ** -23, atol=0)


def test_threshold_is_strict(tmp_path):
    write_broden(tmp_path / "p", id_images(1, 2, 10), {"color": ["x"]}, masks={"color": np.ones((1, 1, 5), int)})
    probe = BrodenProbe(tmp_path / "p")
    maps = torch.arange(5.0).view(1, 1, 1, 5)
    thr = unit_thresholds(lookup(maps), probe, quantile=0.5)
    assert thr.tolist() == [2.0]  # rank 0.5 * (5 - 1) = 2 exactly
    assert tally_units(lookup(maps), probe, thr).active.tolist() == [2]  # 3 and 4; not the 2 itself


# --- bad layouts -------------------------------------------------------------------------------

def small_probe(path):
    mask = np.zeros((2, 2, 2), np.int64)
    mask[:, 0] = 1
    write_broden(path, id_images(2, 4, 4), {"object": ["a"]}, masks={"object": mask})
    return path


def test_missing_index_is_named(tmp_path):
    (small_probe(tmp_path / "p") / "index.csv").unlink()
    with pytest.raises(NvError, match="index.csv"):
        BrodenProbe(tmp_path / "p")


def test_missing_column_is_named(tmp_path):
    root = small_probe(tmp_path / "p")
    index = pd.read_csv(root / "index.csv")
    index.drop(columns=["sh"]).to_csv(root / "index.csv", index=False)
    with pytest.raises(NvError, match=r"index.csv lacks column\(s\) sh"):
        BrodenProbe(root)


def test_missing_mask_is_named(tmp_path):
    root = small_probe(tmp_path / "p")
    (root / "images" / "nv" / "000001_object.png").unlink()
    with pytest.raises(NvError, match="000001_object.png"):
        BrodenProbe(root)


def test_bad_choices_are_named(tmp_path):
    root = small_probe(tmp_path / "p")
    with pytest.raises(NvError, match="unknown category 'objekt'.*Did you mean 'object'"):
        BrodenProbe(root, categories=["objekt"])
    with pytest.raises(NvError, match="unknown split 'val'; valid: train"):
        BrodenProbe(root, split="val")
    with pytest.raises(NvError, match="already holds a probe set"):
        small_probe(root)


# --- concept–class map -------------------------------------------------------------------------

def test_concepts_classes_by_hand():
    units = pd.DataFrame({
        "concept": ["red", "red", "sky", "striped", "grass", "dots"],
        "category": ["color", "color", "object", "texture", "object", "texture"],
        "interpretable": [True, True, True, True, False, True],
    })
    weights = torch.tensor([[2.0, 1.0, -4.0, 0.5, 100.0, -0.5],
                            [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    table = concepts_classes(weights, units, ["ballroom", "barn"], "sum")  # the paper's sum
    assert list(table.columns) == CLASS_COLUMNS
    a = table[table["class"] == "ballroom"].set_index("concept")
    # grass is not interpretable, so its weight of 100 counts for nothing; |sums| total 3 + 4 + 0.5 + 0.5 = 8.
    assert a["weight"].to_dict() == {"red": 3.0, "striped": 0.5, "sky": -4.0, "dots": -0.5}
    assert a["percent"].to_dict() == pytest.approx({"red": 37.5, "striped": 6.25, "sky": 50.0, "dots": 6.25})
    assert a["sign"].to_dict() == {"red": "+", "striped": "+", "sky": "-", "dots": "-"}
    assert a["rank"].to_dict() == {"red": 1, "striped": 2, "sky": 1, "dots": 2}
    assert a["units"].to_dict() == {"red": 2, "striped": 1, "sky": 1, "dots": 1}
    assert list(a.index) == ["red", "striped", "sky", "dots"]  # positives, then negatives, by rank
    b = table[table["class"] == "barn"].set_index("concept")
    assert b.loc["sky", "percent"] == 100.0 and b.loc["red", "percent"] == 0.0


def test_concepts_units_and_figure(tmp_path):
    dissection = pd.DataFrame({"unit": [0, 1], "layer": [0, 1], "channel": [0, 0], "concept": ["red", "sky"],
                               "category": ["color", "object"], "iou": [0.2, 0.1], "threshold": [1.0, 2.0],
                               "interpretable": [True, True]})
    units = pd.DataFrame({"unit": [0, 1], "layer": [0, 1], "node": ["relu", "relu_1"], "channel": [0, 0]})
    table = concepts_units(dissection, units)
    assert list(table.columns) == ["unit", "layer", "node", "channel"] + UNIT_COLUMNS[3:]
    with pytest.raises(NvError, match="2 units but the dissected maps have 1"):
        concepts_units(dissection.iloc[:1], units)
    with pytest.raises(NvError, match="expected \\[classes, units\\] = \\[1, 2\\]"):
        concepts_classes(np.zeros((1, 3)), table, ["a"])
    classes = concepts_classes(np.array([[1.0, -2.0]]), table, ["barn"])
    save_figure(tmp_path / "concepts_barn.png", concept_figure(classes, "barn"))
    assert (tmp_path / "concepts_barn.png").stat().st_size > 0


def test_maps_larger_than_the_masks_are_shrunk_as_pillow_does(tmp_path):
    """NetDissect resizes maps with Pillow's bilinear filter, which widens when shrinking (antialiasing)."""
    n, size, mask = 6, 33, 16  # odd sizes: the filter footprint is not a whole number of pixels
    write_broden(tmp_path / "p", id_images(n, 8, 8), {"object": ["x"]},
                 masks={"object": np.ones((n, 4, 4), np.int64)}, mask_size=(mask, mask))
    probe = BrodenProbe(tmp_path / "p")
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(n, 2, size, size, generator=g)
    thr = torch.tensor([0.3, -0.2])
    tally = tally_units(lookup(maps), probe, thr)
    expected = []
    for unit in range(2):
        active = 0
        for i in range(n):
            shrunk = Image.fromarray(maps[i, unit].numpy(), mode="F").resize((mask, mask), Image.Resampling.BILINEAR)
            active += int((np.asarray(shrunk) > thr[unit].item()).sum())
        expected.append(active)
    assert tally.active.tolist() == expected
