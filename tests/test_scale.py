"""Scale: the device form of the dissection loops, prediction on the model's device, mixed precision, CPU threads."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import test_dissect
import torch
from test_dissect import concept_probe, id_images, lookup

from nvcli.analysis.dissect import stream
from nvcli.analysis.dissect.quantile import unit_thresholds
from nvcli.analysis.dissect.tally import dissect, tally_units
from nvcli.data.broden import BrodenProbe, write_broden
from nvcli.data.shapes import ShapesOptions
from nvcli.errors import NvError
from nvcli.models.spec import ModelChoice
from nvcli.training.config import TrainConfig
from nvcli.training.devices import amp_dtype
from nvcli.training.engine import Trainer
from nvcli.training.recipes import train

TINY = ShapesOptions(image_size=32, train_per_class=8, val_per_class=4)


@pytest.fixture
def device_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the dissection's device form (fixed shapes, scatter-adds, deferred checks) on the CPU."""
    monkeypatch.setattr(stream, "SYNC_FREE", {"cpu", "cuda", "mps"})


@pytest.mark.parametrize("budget", [0, 1 << 22])  # 0: every histogram round; else one round, then collection
def test_device_thresholds_are_the_exact_quantiles(tmp_path, device_loops, budget):
    test_dissect.test_thresholds_are_exact_quantiles(tmp_path, budget)  # torch.quantile's values, device form


def test_device_tally_counts_what_the_host_tally_counts(tmp_path, monkeypatch):
    probe, maps_fn = concept_probe(tmp_path / "p")
    thr = unit_thresholds(maps_fn, probe)
    host = tally_units(maps_fn, probe, thr, batch_size=7)
    monkeypatch.setattr(stream, "SYNC_FREE", {"cpu"})
    device = tally_units(maps_fn, probe, thr, batch_size=7)
    for field in ("intersection", "union", "active"):
        assert torch.equal(getattr(host, field), getattr(device, field)), field
    table = device.table()
    assert table["concept"].tolist()[:4] == ["red", "green", "square", "striped"]  # the planted concepts
    assert host.table().equals(table)


def test_device_dissection_of_mixed_mask_sizes_matches_the_host(tmp_path, monkeypatch):
    # Images of two sizes (masks 4x4 and 3x3) in one batch, two label layers: every grouping path runs.
    rng = np.random.default_rng(2)
    images = [id_images(6, 8, 8)[i] for i in range(3)] + [np.zeros((6, 6, 3), np.uint8) for _ in range(3)]
    for i in range(3, 6):
        images[i][0, 0, 0] = i
    masks = [rng.integers(0, 3, (2, 4, 4)) for _ in range(3)] + [rng.integers(0, 3, (2, 3, 3)) for _ in range(3)]
    write_broden(tmp_path / "p", images, {"object": ["a", "b"], "scene": ["s"]}, masks={"object": masks},
                 image_labels={"scene": [[1], [], [1], [], [1], []]})
    probe = BrodenProbe(tmp_path / "p", image_size=8)
    maps = torch.rand(6, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    host = dissect(lookup(maps), probe, quantile=0.2, batch_size=6)
    monkeypatch.setattr(stream, "SYNC_FREE", {"cpu"})
    device = dissect(lookup(maps), probe, quantile=0.2, batch_size=6)
    assert host.equals(device) and (host["iou"] > 0).all()


def test_device_loops_still_refuse_nan_maps(tmp_path, device_loops):
    write_broden(tmp_path / "p", id_images(4, 4, 4), {"color": ["x"]})
    maps = torch.zeros(4, 1, 2, 2)
    maps[3] = float("nan")  # only the last batch: the check at the end of the pass finds it
    with pytest.raises(NvError, match="layer 1 contain NaN"):
        unit_thresholds(lookup(torch.zeros(4, 2, 2, 2), maps), BrodenProbe(tmp_path / "p"), batch_size=2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_dissection_reads_back_per_pass_not_per_batch(tmp_path):
    probe, maps_fn = concept_probe(tmp_path / "p")
    ids = torch.arange(len(probe))
    encoded = torch.zeros(len(probe), 3, 1, 1)
    encoded[:, 0, 0, 0], encoded[:, 1, 0, 0] = (ids % 256) / 255, (ids // 256) / 255
    on_gpu = lookup(*(layer.cuda() for layer in maps_fn(encoded)))  # maps computed on the GPU from the images

    def syncs(batch_size: int) -> tuple[int, object]:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                table = dissect(on_gpu, probe, batch_size=batch_size, device="cuda")
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(w.message) for w in caught), table

    syncs(100)  # CUDA's own first-use work
    few, a = syncs(100)  # 2 batches per pass
    many, b = syncs(10)  # 20 batches per pass
    assert a.equals(b)
    host = dissect(maps_fn, probe)  # GPU interpolation may round differently in the last bit
    assert a["concept"].tolist() == host["concept"].tolist()
    np.testing.assert_allclose(a["iou"], host["iou"], atol=1e-3)
    assert many == few  # the same host round trips however many batches there are


def test_predict_keeps_the_single_pass_contract():
    from torch import nn
    from torch.utils.data import TensorDataset

    from nvcli.training.predict import predict

    x, y = torch.randn(10, 4), torch.arange(10) % 3
    model = nn.Linear(4, 3)
    logits, labels = predict(model, TensorDataset(x, y), batch_size=4, device="cpu",
                             transforms={"none": lambda t: t, "neg": lambda t: -t})
    assert torch.equal(labels, y) and logits["none"].device.type == "cpu"
    torch.testing.assert_close(logits["none"], model(x).detach())
    torch.testing.assert_close(logits["neg"], model(-x).detach())


# --- mixed precision ---------------------------------------------------------------------------

def test_one_function_decides_the_precision(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype(cpu, False) == torch.float32 and amp_dtype(cuda, False) == torch.float32
    assert amp_dtype(cpu, True) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_dtype(cuda, True) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_dtype(cuda, True) == torch.float16  # e.g. a V100: float16, with loss scaling


def test_amp_training_records_its_precision_and_learns(tmp_path):
    choice = ModelChoice(arch="smallcnn")
    run = train(choice, "shapes", TINY, TrainConfig(epochs=2, batch_size=16, lr=3e-3, device="cpu", amp=True),
                name="amp", runs_dir=tmp_path)
    config = json.loads((run.dir / "config.json").read_text())
    assert config["precision"] == "bfloat16" and config["train"]["amp"] is True
    plain = train(choice, "shapes", TINY, TrainConfig(epochs=1, batch_size=16, device="cpu"), name="fp32",
                  runs_dir=tmp_path)
    assert json.loads((plain.dir / "config.json").read_text())["precision"] == "float32"
    state = torch.load(run.dir / "checkpoint.pt", weights_only=True)
    assert state["scaler"] == {}  # bfloat16 needs no loss scaling
    losses = pd.read_csv(run.dir / "metrics.csv")["train_loss"]
    assert np.isfinite(losses).all() and losses.iloc[-1] < losses.iloc[0]


def test_bfloat16_autocast_runs_the_forward_in_bfloat16(tmp_path):
    from nvcli.data.registry import load_data
    from nvcli.models.build import build_model
    from nvcli.training.recipes import spec_for

    bundle = load_data("shapes", TINY)
    model = build_model(spec_for(ModelChoice(arch="smallcnn"), bundle))
    trainer = Trainer(model, bundle.train, bundle.val, TrainConfig(epochs=1, device="cpu", amp=True), None,
                      device=torch.device("cpu"))
    seen = []
    model.head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    trainer.fit()
    assert trainer.dtype == torch.bfloat16 and not trainer.scaler.is_enabled()
    assert seen[0] == torch.bfloat16  # the training forward; validation runs in float32


# --- CPU threads -------------------------------------------------------------------------------

COMPUTE = ("train", "multiview", "eval", "perturb", "compare", "dissect-map", "explain")


def test_every_compute_command_takes_threads():
    from nvcli.cli.app import load

    for name in COMPUTE:
        options = {o for p in load(name).params for o in p.opts}
        assert "--threads" in options, name


def test_threads_flag_sets_torch_threads_for_inference(nv, tmp_path):
    run = train(ModelChoice(arch="smallcnn"), "shapes", TINY, TrainConfig(epochs=1, batch_size=16, device="cpu"),
                name="t", runs_dir=tmp_path)
    before = torch.get_num_threads()
    try:
        result = nv("explain", "--run", run.dir, "--index", "0", "--threads", "2", "--no-plot")
        assert result.code == 0, result.err
        assert torch.get_num_threads() == 2
        result = nv("eval", "--run", run.dir, "--threads", "1", "--device", "cpu", "--no-plot")
        assert result.code == 0, result.err
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    refused = nv("eval", "--run", run.dir, "--threads", "0")
    assert refused.code == 2 and "--threads" in refused.err


# --- several machines ----------------------------------------------------------------------------

def test_two_nodes_through_the_c10d_rendezvous_keep_the_single_process_contract(tmp_path):
    """Two single-process "nodes" on loopback, launched as on a cluster: one torchrun per node, one endpoint."""
    import os
    import socket
    import subprocess
    import sys

    from test_trust import ARGS

    from nvcli.runs.run import load_run

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONUNBUFFERED": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
         str(rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "nv-test",
         "--rdzv-conf", f"is_host={int(rank == 0)}", "--local-addr", "127.0.0.1",
         "-m", "nvcli", "-v", "train", *ARGS, "--epochs", "1", "--name", "mn", "--runs-dir", str(tmp_path / "runs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, (_, err) in zip(nodes, outputs):
        assert node.returncode == 0, err[-2000:]
    out, err = "".join(o for o, _ in outputs), "".join(e for _, e in outputs)
    assert "rank 0 of 2 (gloo" in err and "rank 1 of 2 (gloo" in err  # one world across both nodes
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["latest", "mn"]  # one run, written once
    assert err.count("run written to") == 1 and out.count("final epoch") == 1  # only global rank 0 reports
    run = load_run(tmp_path / "runs" / "mn")
    metrics = pd.read_csv(run.dir / "metrics.csv")
    assert metrics["epoch"].tolist() == [1] and metrics[["train_loss", "val_loss"]].notna().all().all()
    assert run.model().head.weight.shape == (9, 112) and run.config.precision == "float32"
