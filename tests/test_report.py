"""report.html: written from a real (small) training run, parsed, and rendered by headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_small_dataset
from PIL import Image

from fmnist import data, metrics, plots
from fmnist.checkpoint import load_model, read_json
from fmnist.report import write_report
from fmnist.train import Config, train

CHROMIUM = "chromium"


class Page(HTMLParser):
    """Every start tag with its attributes, and the visible text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for t, attrs in self.tags if t == tag]


@pytest.fixture
def small_arrays() -> dict[str, np.ndarray]:
    """conftest's toy dataset with every 7th test label moved to the next class: mistakes to show."""
    arrays = make_small_dataset()
    arrays["test_labels"][::7] = (arrays["test_labels"][::7] + 1) % 10
    return arrays


@pytest.fixture
def run(small_data, tmp_path) -> dict:
    """A 3-epoch run on the small dataset with its pictures and report.html, as `fmnist train` makes them."""
    out = tmp_path / "runs" / "small <&> run"
    summary = train(Config(epochs=3), out, log=lambda line: None, progress=False)
    net, config = load_model(out)
    dataset = data.load()
    with torch.no_grad():
        probs = net(dataset.test_images).softmax(dim=1)
    confusion = metrics.confusion_matrix(probs.argmax(dim=1), dataset.test_labels)
    names = list(data.LABELS)
    rows = [{**row, "val_acc": row["test_acc"] - 0.01} for row in _rows(out)]
    pictures = {"curves": out / "curves.png", "confusion": out / "confusion.png", "mistakes": out / "mistakes.png"}
    plots.plot_curves(rows, pictures["curves"])
    plots.plot_confusion(confusion, names, pictures["confusion"])
    plots.plot_mistakes(dataset.test_images, dataset.test_labels, probs, names, pictures["mistakes"])
    config["note"] = "<script>var injected = 1;</script> & more"  # text that must be escaped
    per_class, confused = metrics.per_class(confusion, names), metrics.most_confused(confusion, names)
    write_report(out / "report.html", config=config, rows=rows, summary=summary, per_class=per_class,
                 confused=confused, pictures=pictures)  # fmt: skip
    return {"out": out, "summary": summary, "rows": rows, "pictures": pictures, "per_class": per_class,
            "confused": confused, "confusion": confusion}  # fmt: skip


def _rows(out: Path) -> list[dict]:
    lines = (out / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in zip(header, line.split(","), strict=True)}
            for line in lines[1:]]  # fmt: skip


def test_report_holds_the_numbers_names_and_escaped_text(run):
    text = (run["out"] / "report.html").read_text()
    page = Page(text)
    visible = " ".join(page.text)
    assert read_json(run["out"] / "summary.json")["test_acc"] == run["summary"]["test_acc"]
    assert f"{100 * run['summary']['test_acc']:.2f}%" in visible
    assert "small <&> run" not in text and "small &lt;&amp;&gt; run" in text  # the run's name, escaped
    for name in data.LABELS:
        assert name in visible
    assert "<script>var injected = 1;</script> & more" in visible and not page.all("script")
    confused = run["confused"]
    assert confused and all(str(c["count"]) in visible for c in confused)
    accuracies = [float(metrics.per_class(run["confusion"], data.LABELS)[i]["accuracy"]) for i in range(10)]
    assert all(f"{100 * a:.2f}%" in visible for a in accuracies)
    # per class: header + 10, confused pairs: header + k, per epoch: header + epochs, configuration: header + settings
    assert len(page.all("tr")) >= 1 + 10 + 1 + len(confused) + 1 + len(run["rows"]) + 1
    for row in run["rows"]:
        assert f"{row['test_acc']:.4f}" in visible and f"{row['val_acc']:.4f}" in visible


def test_report_is_self_contained_and_embeds_the_pictures_byte_for_byte(run):
    text = (run["out"] / "report.html").read_text()
    page = Page(text)
    without_pictures = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    for reference in ("http://", "https://", "//", "file:", 'src="/', "url(", "@import"):
        assert reference not in without_pictures
    references = [(tag, k, v) for tag, attrs in page.tags for k, v in attrs.items() if k in ("src", "href", "srcset")]
    assert all(tag == "img" and k == "src" and v.startswith("data:image/png;base64,") for tag, k, v in references)
    assert not page.all("link") and not page.all("iframe") and not page.all("object")
    embedded = [base64.b64decode(img["src"].split(",", 1)[1], validate=True) for img in page.all("img")]
    assert embedded == [path.read_bytes() for path in run["pictures"].values()]
    policy = [m["content"] for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert policy and "default-src 'none'" in policy[0]


def test_report_renders_in_chromium_with_every_picture_loaded(run, tmp_path):
    browser = shutil.which(CHROMIUM)
    if browser is None:
        pytest.fail("headless Chromium is needed to check the report: apt-get install chromium (make test does)")
    text = (run["out"] / "report.html").read_text()
    # Let the page run one script (added here, the report has none) that reports every picture's decoded size.
    probe = (
        "<script>window.addEventListener('load', () => { document.title = JSON.stringify("
        "[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])); });</script>"
    )
    probed = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    probed = probed.replace("</body>", probe + "</body>", 1)
    assert probed.count("script-src 'unsafe-inline'") == 1 and probe in probed
    page = tmp_path / "probed.html"
    page.write_text(probed)
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=60, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", done.stdout, re.S)
    assert title, done.stdout[:2000]
    loaded = json.loads(html.unescape(title.group(1)))
    sizes = []
    for path in run["pictures"].values():
        with Image.open(path) as image:
            sizes.append([True, *image.size])
    assert loaded == sizes
