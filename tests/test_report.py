"""`nv report`: one self-contained page with everything a run holds, checked on the HTML and in a real browser."""
from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
from conftest import HOSTILE_CLASS, HOSTILE_RUN, shown_as_text
from matplotlib.figure import Figure
from PIL import Image

from nvcli.analysis.dissect.concepts import dissect_run
from nvcli.analysis.evaluate import evaluate
from nvcli.analysis.explain import explain_run
from nvcli.analysis.head import read_head
from nvcli.analysis.perturb import perturb
from nvcli.analysis.settings import Compute, DissectOptions, HeadSettings
from nvcli.analysis.weights import weights
from nvcli.report.build import summary
from nvcli.runs import provenance
from nvcli.runs.results import read_manifest, save_files, table
from nvcli.runs.run import Run, load_run
from nvcli.schema import JsonRecord

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FIREFOX_NAMES = ("firefox-esr", "firefox")  # tried when no Chromium-family browser starts: a screenshot only
TRAINED = {"config.json", "model.pt", "checkpoint.pt", "head_init.pt", "units.csv", "metrics.csv", "metrics.png"}
REQUIRE_BROWSER = "NV_REQUIRE_BROWSER"  # set to 1 (as .ci/run does) and a missing browser fails the browser test


@pytest.fixture(scope="module")
def full_run(shapes_runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A copy of the trained shapes run holding every result kind an image run can have (no multi-view)."""
    run = _copy(shapes_runs["nv"], tmp_path_factory.mktemp("report"), trained_only=True)
    saves = [(evaluate(run, compute=Compute(device="cpu")), "nv eval"),
             *[(r, "nv weights --class " + r.cls) for r in weights(run.name, read_head(run),
                                                                   ["red", "circle"])[0]],
             (weights(run.name, read_head(run), ["red"])[1], "nv weights --class red"),
             (perturb(run, compute=Compute(device="cpu")), "nv perturb --channel all"),
             (explain_run(run, index=0), "nv explain --index 0"),
             (dissect_run(run, options=DissectOptions(probe_count=60), compute=Compute(device="cpu")),
              "nv dissect-map --probe-count 60")]
    for result, command in saves:
        result.save(run.dir, command=f"{command} --run {run.dir}")
    return run


def _copy(run: Run, tmp_path: Path, trained_only: bool = False) -> Run:
    """A copy of `run` in `tmp_path`; `trained_only`: just what training wrote (other tests add results)."""
    ignore = (lambda folder, names: [n for n in names if n not in TRAINED]) if trained_only else None
    return load_run(shutil.copytree(run.dir, tmp_path / run.name, ignore=ignore))


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def _sections(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', page)


class _Tables(HTMLParser):
    """Every table of a page as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None


def _table(page: str) -> pd.DataFrame:
    """The first table of `page`."""
    parser = _Tables()
    parser.feed(page)
    header, *rows = parser.tables[0]
    return pd.DataFrame(rows, columns=header)


def _expected_sections(run: Run) -> list[str]:
    order = ["eval", "weights", "head-summary", "perturb", "explain", "concepts", "views", "ablation", "sparse",
             "compare"]
    kinds = {key.split("/")[0].split("@")[0] for key in read_manifest(run.dir)}
    return ["overview", "config", "training"] + [k for k in order if k in kinds] + sorted(kinds - set(order))


def test_report_embeds_every_figure_with_its_caption_and_command(full_run: Run, nv) -> None:
    result = nv("report", "--run", full_run.dir)
    assert result.code == 0, result.err
    path = full_run.dir / "report.html"
    assert result.out.strip() == str(path)  # the path to open, alone on stdout
    page = path.read_text()
    assert _sections(page) == _expected_sections(full_run)
    manifest = read_manifest(full_run.dir)
    pngs = [name for entry in manifest.values() for name in entry["files"] if name.endswith(".png")]
    embedded = _images(page)
    assert len(embedded) == len(pngs) + 1  # and metrics.png, written by training
    files = {(full_run.dir / name).read_bytes() for name in pngs + ["metrics.png"]}
    assert set(embedded) == files  # each figure embedded exactly as the run holds it
    for entry in manifest.values():
        assert f"regenerate with: {entry['command']}" in html.unescape(page)
    assert "per_class.csv: Accuracy per class" in page  # key tables shown open, with what they hold
    assert "drew" not in result.err  # nothing was missing


def test_report_draws_missing_figures_for_the_page_only(full_run: Run, nv, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    for png in run.dir.glob("*.png"):
        png.unlink()
    before = sorted(p.name for p in run.dir.iterdir())
    result = nv("report", "--run", run.dir, "--out", tmp_path / "page.html")
    assert result.code == 0, result.err
    assert sorted(p.name for p in run.dir.iterdir()) == before  # the run is left as it was
    page = (tmp_path / "page.html").read_text()
    drawn = page.count("drawn for this page")
    # all but the two that need the input image (explain_index0.png, perturb_examples.png)
    pngs = [n for e in read_manifest(run.dir).values() for n in e["files"] if n.endswith(".png")]
    assert drawn == len(pngs) - 2 + 1  # + metrics.png from metrics.csv
    assert len(_images(page)) == drawn
    assert "listed in results.json but missing: explain_index0.png" in page
    for image in _images(page):
        assert Image.open(io.BytesIO(image)).size[0] > 200


def test_a_result_saved_without_figures_says_how_to_get_them(full_run: Run, nv, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    assert nv("explain", "--run", run.dir, "--index", "1", "--no-plot").code == 0
    assert nv("report", "--run", run.dir).code == 0
    text = (run.dir / "report.html").read_text()
    assert f"no figure was saved with this result; regenerate with: nv explain --run {run.dir} --index 1" in text


def _png(path: Path) -> None:
    fig = Figure(figsize=(4, 2))
    fig.subplots().plot([0, 1], [1, 0])
    fig.savefig(path, format="png")


@dataclass(frozen=True)
class Order(JsonRecord):
    """Settings of an ablation saved by another program: not nv's (`AblationSettings`), so not redrawn."""

    order: str


def test_result_kinds_the_report_does_not_know_still_get_a_section(full_run: Run, nv, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    frame = pd.DataFrame({"units_removed": [0, 10], "accuracy": [0.9, 0.4]})
    made_from = provenance.made_from(run)
    save_files(run.dir, "ablation", Order("weight"), {"ablation.csv": table(frame), "ablation.png": _png},
               command="nv ablate --run x", made_from=made_from)
    save_files(run.dir, "mystery/one", HeadSettings("dense"), {"mystery_one.csv": table(frame)}, command="nv mystery",
               made_from=made_from)
    assert nv("report", "--run", run.dir).code == 0
    page = (run.dir / "report.html").read_text()
    sections = _sections(page)
    assert sections[-3:] == ["concepts", "ablation", "mystery"]  # known kinds in paper order, then unknown ones
    ablation = page[page.index('<section id="ablation"'):page.index('<section id="mystery"')]
    assert "Unit ablation" in ablation and "ablation.png</span>: Per class, its accuracy" in ablation
    assert (run.dir / "ablation.png").read_bytes() in _images(ablation)
    assert "regenerate with: nv ablate --run x" in ablation and "units_removed" in ablation


def test_hostile_names_are_text_everywhere_on_the_page(full_run: Run, nv, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path / "runs")
    run = load_run(run.dir.rename(run.dir.parent / HOSTILE_RUN))
    config = json.loads((run.dir / "config.json").read_text())
    config["data"]["classes"][0] = HOSTILE_CLASS  # the results made from the data are stale now: marked, with why
    (run.dir / "config.json").write_text(json.dumps(config))
    run = load_run(run.dir)
    per_class, _ = weights(run.name, read_head(run), [HOSTILE_CLASS])
    per_class[0].save(run.dir, command=f"nv weights --class '{HOSTILE_CLASS}'")
    frame = pd.DataFrame({HOSTILE_CLASS: [HOSTILE_RUN, "0.5"]})  # a table's header and cells
    save_files(run.dir, f"mystery/{HOSTILE_CLASS}", HeadSettings("dense"), {"mystery.csv": table(frame)},
               command=HOSTILE_CLASS, made_from=provenance.made_from(run))
    with open(run.dir / "model.pt", "ab") as f:  # every result is stale: each mark names its key and command
        f.write(b"\0")
    other = _copy(full_run, tmp_path / "other", trained_only=True)
    for runs in ([run.dir], [run.dir, other.dir]):
        args = [a for r in runs for a in ("--run", r)]
        assert nv("report", *args, "--out", tmp_path / "page.html").code == 0
        page = (tmp_path / "page.html").read_text()
        elements = shown_as_text(page, HOSTILE_CLASS, HOSTILE_RUN)
        marks = [attrs["data-stale"] for tag, attrs in elements if "data-stale" in attrs]
        assert f"mystery/{HOSTILE_CLASS}" in marks and len(marks) == len(read_manifest(run.dir)), marks


def test_several_runs_side_by_side(shapes_runs: dict[str, Run], nv, tmp_path: Path) -> None:
    a, b = (_copy(shapes_runs[name], tmp_path, trained_only=True) for name in ("nv", "base"))
    result = nv("report", "--run", a.dir, "--run", b.dir)
    assert result.code == 0, result.err
    path = a.dir / "report_vs_base.html"
    assert result.out.strip() == str(path)
    page = path.read_text()
    overview = _table(page)
    assert overview["run"].tolist() == ["nv", "base"]
    assert overview["network"].tolist() == ["NeuroView smallcnn", "smallcnn"]
    assert overview["accuracy"].tolist() == [f"{r.last_val_acc:.2%}" for r in (a, b)]
    differences = _table(page[page.index('<section id="config"'):])
    assert "baseline" in differences["setting"].tolist() and "epochs" not in differences["setting"].tolist()
    assert len(_images(page)) == 2  # each run's training curves


def test_an_old_run_without_labels_metrics_png_or_results_json(full_run: Run, nv, tmp_path: Path) -> None:
    run = _copy(full_run, tmp_path)
    for name in ("results.json", "metrics.png"):
        (run.dir / name).unlink()
    units = pd.read_csv(run.dir / "units.csv")
    units.drop(columns="label").to_csv(run.dir / "units.csv", index=False)
    result = nv("report", "--run", run.dir)
    assert result.code == 0, result.err
    page = (run.dir / "report.html").read_text()
    assert _sections(page) == ["overview", "config", "training"]
    assert "drawn for this page from metrics.csv" in page and len(_images(page)) == 1


@pytest.mark.parametrize("out, message", [("missing/page.html", "does not exist"), (".", "is a directory")])
def test_report_bad_out(full_run: Run, nv, tmp_path: Path, out: str, message: str) -> None:
    result = nv("report", "--run", full_run.dir, "--out", tmp_path / out)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 2  # the run line, then the one-line error


def test_report_of_a_directory_that_is_not_a_run(nv, tmp_path: Path) -> None:
    result = nv("report", "--run", tmp_path)
    assert result.code == 2 and "not an nv run directory" in result.err


def test_the_overview_reads_eval_csv_only_while_it_is_of_the_present_weights(full_run: Run, tmp_path: Path,
                                                                           nv) -> None:
    run = load_run(shutil.copytree(full_run.dir, tmp_path / "r"))
    accuracy = pd.read_csv(run.dir / "eval.csv")["accuracy"].iloc[0]
    assert summary(run)["accuracy"] == f"{accuracy:.2%}" and summary(run)["accuracy from"] == "eval.csv"
    assert nv("report", "--run", run.dir).code == 0 and 'class="stale"' not in (run.dir / "report.html").read_text()
    with open(run.dir / "model.pt", "ab") as f:  # other weights than those eval.csv was computed from
        f.write(b"\0")
    changed = summary(load_run(run.dir))
    assert changed["accuracy from"] == "metrics.csv (last epoch; eval.csv is stale)", changed
    assert nv("report", "--run", run.dir).code == 0
    page = (run.dir / "report.html").read_text()
    for section in ("eval", "weights"):  # every section's results, not the overview alone, say they are stale
        body = page[page.index(f'<section id="{section}"'):]
        body = body[:body.index("</section>")]
        assert '<div class="stale"' in body and "model.pt changed since" in body, section


@pytest.mark.parametrize("target", ["model.pt", "checkpoint.pt", "config.json", "results.json", "eval.csv",
                                    "fifo", "link", "/dev/null"])
def test_report_force_replaces_only_a_regular_file_that_is_not_the_runs(full_run: Run, nv, tmp_path: Path,
                                                                        target: str) -> None:
    run = load_run(shutil.copytree(full_run.dir, tmp_path / "r"))
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
    elif target == "link":
        (tmp_path / "mine.txt").write_text("mine")
        (tmp_path / "link").symlink_to(tmp_path / "mine.txt")
    path = Path(target) if target.startswith("/") else (tmp_path / target if target in ("fifo", "link")
                                                        else run.dir / target)
    before = {p.name: p.read_bytes() for p in run.dir.iterdir() if p.is_file()}
    result = nv("report", "--run", run.dir, "--out", path, "--force")
    assert result.code == 2 and "Traceback" not in result.err and len(result.err.strip().splitlines()) == 2
    assert ("not a regular file" in result.err) if target in ("fifo", "link", "/dev/null") else \
        "is a file of the run" in result.err, result.err
    assert {p.name: p.read_bytes() for p in run.dir.iterdir() if p.is_file()} == before
    assert path.is_char_device() if target == "/dev/null" else True
    if target == "link":
        assert (tmp_path / "mine.txt").read_text() == "mine" and (tmp_path / "link").is_symlink()
    user = tmp_path / "notes.txt"
    user.write_text("the user's")
    assert nv("report", "--run", run.dir, "--out", user, "--force").code == 0  # a user's own file, as asked


def test_report_reads_a_run_without_torch_unless_a_result_was_made_from_data(full_run: Run, tmp_path: Path) -> None:
    def loaded(run: Run) -> str:
        code = ("import sys\nfrom nvcli.runs.run import load_run\nfrom nvcli.report.build import build_report\n"
                f"report, path = build_report([load_run({str(run.dir)!r})])\n"
                "print(len(report.html) > 0, report.drawn, "
                "sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    weights_only = load_run(shutil.copytree(full_run.dir, tmp_path / "w"))
    manifest = json.loads((weights_only.dir / "results.json").read_text())
    manifest["results"] = {k: v for k, v in manifest["results"].items() if not any(
        source.startswith("data/") for source in v["made_from"])}  # only results of the weights alone
    (weights_only.dir / "results.json").write_text(json.dumps(manifest))
    assert loaded(weights_only) == "True [] []"
    assert loaded(full_run) == "True [] ['torch']"  # eval.csv's validation data are listed: loads torch


# --- in a real browser -----------------------------------------------------------------------------------------

CHECK = """<script>addEventListener("load", () => {
  const images = [...document.images];
  const found = {images: images.length,
    undecoded: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth,
    sections: [...document.querySelectorAll("section")].map(s => s.id)};
  const out = document.createElement("pre"); out.id = "nv-check"; out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});</script>"""


class Browser(NamedTuple):
    """A browser that starts here: its path, and whether it can print the page's DOM (Chromium's --dump-dom)."""

    path: str
    dumps_dom: bool


def _works(browser: Browser, folder: Path) -> str:
    """'' when `browser` renders a one-line page here within a minute, else why not (its last line of stderr)."""
    page = folder / "trivial.html"
    page.write_text("<!DOCTYPE html><p id='ok'>ok</p>")
    shot = folder / "trivial.png"
    try:
        done = _render(browser, page, f"--screenshot={shot}", timeout=60)
    except subprocess.TimeoutExpired:
        return "it did not finish a one-line page within 60 s"
    if done.returncode == 0 and shot.is_file():
        return ""
    lines = (done.stderr or "").strip().splitlines()
    return f"exit {done.returncode}: {lines[-1][:200] if lines else 'no message'}"


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    """The first browser of BROWSER_NAMES, then FIREFOX_NAMES, that renders a trivial page here; with none (missing,
    or unable to start on this machine), the test is skipped, and fails where NV_REQUIRE_BROWSER=1 (as in CI)."""
    candidates = [Browser(p, True) for p in map(shutil.which, BROWSER_NAMES) if p]
    candidates += [Browser(p, False) for p in map(shutil.which, FIREFOX_NAMES) if p]
    failures = []
    for candidate in dict.fromkeys(candidates):
        why = _works(candidate, tmp_path_factory.mktemp("browser-check"))
        if not why:
            return candidate
        failures.append(f"{candidate.path} cannot start here ({why})")
    message = ("; ".join(failures) if failures else
               f"no browser to render the report ({', '.join(BROWSER_NAMES + FIREFOX_NAMES)}); .ci/run installs "
               "Debian's chromium")
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but {message}")
    pytest.skip(message)


def _render(browser: Browser, page: Path, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="nv-browser-") as profile:
        if browser.dumps_dom:
            command = [browser.path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                       "--disable-background-networking", "--disable-component-update", "--disable-sync",
                       "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1280,1000",
                       "--virtual-time-budget=10000", *args, page.resolve().as_uri()]
        else:  # Firefox: --screenshot takes its file as the next word
            shot = [a.partition("=")[2] for a in args if a.startswith("--screenshot=")]
            command = [browser.path, "--headless", "--profile", profile, "--window-size=1280,1000",
                       *(["--screenshot", shot[0]] if shot else []), page.resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_a_browser_that_cannot_start_is_named_not_timed_out(tmp_path: Path) -> None:
    crashing = tmp_path / "chromium"  # as Debian's chromium 150 did on a small VM
    crashing.write_text("#!/bin/sh\necho 'Network service crashed, restarting service.' >&2\nexit 133\n")
    crashing.chmod(0o755)
    assert _works(Browser(str(crashing), True), tmp_path) == "exit 133: Network service crashed, restarting service."
    fine = tmp_path / "firefox"  # takes its screenshot as a browser does
    fine.write_text("#!/bin/sh\nwhile [ \"$1\" != --screenshot ]; do shift; done\necho png > \"$2\"\n")
    fine.chmod(0o755)
    assert _works(Browser(str(fine), False), tmp_path) == ""


def test_report_renders_in_a_browser(browser: Browser, full_run: Run, nv, tmp_path: Path) -> None:
    assert nv("report", "--run", full_run.dir).code == 0
    page = full_run.dir / "report.html"
    if browser.dumps_dom:  # Chromium prints the DOM after the page's scripts ran: the images decoded, the layout
        checked = tmp_path / "check.html"
        checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
        dom = _render(browser, checked, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        found = json.loads(html.unescape(re.search(r'<pre id="nv-check">(.*?)</pre>', dom.stdout, re.S).group(1)))
        assert found["images"] == len(_images(page.read_text())) > 10
        assert found["undecoded"] == []  # every image decoded (naturalWidth > 0)
        assert found["sections"] == _expected_sections(full_run)
        assert found["width"] == 1280 and found["scrollWidth"] <= 1280  # no horizontal overflow at 1280 px

    shot = tmp_path / "shot.png"
    taken = _render(browser, page, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 1000)
    assert len(np.unique(np.asarray(image))) > 20  # text and figures, not a blank page
