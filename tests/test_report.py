"""report.html: written from a real (small) training run, parsed, and rendered by headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import CLICK_EVERYTHING, check_clicks, run_probe
from conftest import make_small_dataset
from PIL import Image

from fmnist import data, metrics, plots
from fmnist.report import explorer, report_page, sprite
from fmnist.rundir import RunDir, read_json
from fmnist.settings import Config
from fmnist.train import train


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
    net, _ = RunDir(out).load_model()
    config = RunDir(out).description()
    dataset = data.load()
    with torch.no_grad():
        probs = net(dataset.test_images).softmax(dim=1)
    confusion = metrics.confusion_matrix(probs.argmax(dim=1), dataset.test_labels)
    names = list(data.LABELS)
    rows = [{**row, "val_acc": row["test_acc"] - 0.01} for row in _rows(out)]
    pictures = {"curves": out / "curves.png", "mistakes": out / "mistakes.png", "weights": out / "weights.png"}
    plots.plot_curves(rows, pictures["curves"])
    plots.plot_mistakes(dataset.test_images, dataset.test_labels, probs, names, pictures["mistakes"])
    config["note"] = "<script>var injected = 1;</script> & more"  # text that must be escaped
    per_class, confused = metrics.per_class(confusion, names), metrics.most_confused(confusion, names)
    page = report_page(out.name, config=config, rows=rows, summary=summary, per_class=per_class, confused=confused,
                       confusion=confusion.numpy(), pictures={k: v.read_bytes() for k, v in pictures.items()},
                       explorer=explorer(sprite(dataset.test_images[:, 0].numpy()), dataset.test_labels.numpy(),
                                         probs.numpy(), names))  # fmt: skip
    (out / "report.html").write_bytes(page)
    return {"out": out, "summary": summary, "rows": rows, "pictures": pictures, "per_class": per_class,
            "confused": confused, "confusion": confusion, "images": dataset.test_images[:, 0].numpy(),
            "labels": dataset.test_labels.numpy(), "probs": probs.numpy()}  # fmt: skip


def _rows(out: Path) -> list[dict]:
    lines = (out / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in zip(header, line.split(","), strict=True)}
            for line in lines[1:]]  # fmt: skip


def scripts(text: str) -> list[tuple[str, str]]:
    """(type attribute, content) of every script element."""
    return re.findall(r'<script(?: type="([^"]*)")?[^>]*>(.*?)</script>', text, re.S)


def test_report_holds_the_numbers_names_and_escaped_text(run):
    text = (run["out"] / "report.html").read_text()
    page = Page(text)
    visible = " ".join(page.text)
    assert read_json(run["out"] / "summary.json")["test_acc"] == run["summary"]["test_acc"]
    assert f"{100 * run['summary']['test_acc']:.2f}%" in visible
    assert "small <&> run" not in text and "small &lt;&amp;&gt; run" in text  # the run's name, escaped
    for name in data.LABELS:
        assert name in visible
    assert "<script>var injected = 1;</script> & more" in visible
    assert [kind for kind, _ in scripts(text)] == ["application/json", ""]  # the test set's data, the page's code
    confused = run["confused"]
    assert confused and all(str(c["count"]) in visible for c in confused)
    accuracies = [float(metrics.per_class(run["confusion"], data.LABELS)[i]["accuracy"]) for i in range(10)]
    assert all(f"{100 * a:.2f}%" in visible for a in accuracies)
    # per class: header + 10, confused pairs: header + k, confusion: header + 10, per epoch: header + epochs,
    # configuration: header + settings
    assert len(page.all("tr")) >= 1 + 10 + 1 + len(confused) + 1 + 10 + 1 + len(run["rows"]) + 1
    for row in run["rows"]:
        assert f"{row['test_acc']:.4f}" in visible and f"{row['val_acc']:.4f}" in visible


def test_confusion_matrix_is_a_static_table_of_the_counts(run):
    text = (run["out"] / "report.html").read_text()
    cells = re.findall(r'<td data-true="(\d+)" data-predicted="(\d+)"[^>]*>(\d+)</td>', text)
    table = np.zeros((10, 10), np.int64)
    for i, j, count in cells:
        table[int(i), int(j)] = int(count)
    assert len(cells) == 100 and np.array_equal(table, run["confusion"].numpy())
    assert table.sum() == len(run["labels"]) and table.trace() < table.sum()  # the fixture made mistakes
    classes = re.findall(r'<td data-class="(\d+)">([^<]*)</td>', text)
    assert classes == [(str(i), name) for i, name in enumerate(data.LABELS)]
    assert '<section id="viewer" hidden>' in text  # empty and hidden until a click


def test_report_is_self_contained_and_embeds_the_pictures_byte_for_byte(run):
    text = (run["out"] / "report.html").read_text()
    page = Page(text)
    without_pictures = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert without_pictures.count("url(") == 1 and "url()" in without_pictures  # the sprite's, a data: URI
    for reference in ("http://", "https://", "//", "file:", 'src="/', "@import", "fetch(", "XMLHttpRequest"):
        assert reference not in without_pictures.replace("url()", "")
    references = [(tag, k, v) for tag, attrs in page.tags for k, v in attrs.items() if k in ("src", "href", "srcset")]
    assert all(tag == "img" and k == "src" and v.startswith("data:image/png;base64,") for tag, k, v in references)
    assert not page.all("link") and not page.all("iframe") and not page.all("object")
    embedded = [base64.b64decode(img["src"].split(",", 1)[1], validate=True) for img in page.all("img")]
    assert embedded == [path.read_bytes() for path in run["pictures"].values()]


def test_policy_allows_exactly_the_pages_one_script(run):
    text = (run["out"] / "report.html").read_text()
    policy = [m["content"] for m in Page(text).all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    code = [content for kind, content in scripts(text) if kind == ""]
    assert len(policy) == 1 and len(code) == 1
    digest = base64.b64encode(hashlib.sha256(code[0].encode()).digest()).decode()
    assert policy[0] == ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                         f"script-src 'sha256-{digest}'")  # fmt: skip
    assert "on" + "click=" not in text.lower() and "javascript:" not in text.lower()  # no inline handlers


def test_sprite_holds_every_test_image_at_16_grey_levels(run):
    text = (run["out"] / "report.html").read_text()
    sprite = re.search(r"url\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", text).group(1)
    size = re.search(r"background-size: (\d+)px (\d+)px", text).groups()
    test_set = json.loads(scripts(text)[0][1])
    with Image.open(io.BytesIO(base64.b64decode(sprite))) as picture:
        grey = np.asarray(picture.convert("L")).astype(int)
    columns = test_set["columns"]
    assert grey.shape[1] == columns * 28 and [int(v) for v in size] == [columns * 56, grey.shape[0] * 2]
    images = run["images"]
    for i in range(len(images)):
        row, column = divmod(i, columns)
        tile = grey[row * 28 : (row + 1) * 28, column * 28 : (column + 1) * 28]
        assert np.abs(tile - images[i] * 255).max() <= 255 / 30 + 0.5  # half a step of 16 levels
    assert test_set["labels"] == run["labels"].tolist()
    assert test_set["predicted"] == run["probs"].argmax(axis=1).tolist()
    assert np.allclose(test_set["prob"], run["probs"].max(axis=1), atol=5e-4)


def test_clicking_a_cell_or_a_class_shows_its_test_images_in_chromium(run, chromium, tmp_path):
    text = (run["out"] / "report.html").read_text()
    result = run_probe(chromium, text, CLICK_EVERYTHING, tmp_path)
    check_clicks(result, run["labels"], run["probs"], run["confusion"].numpy())
    columns = min(len(run["labels"]), 100)
    rows = -(-len(run["labels"]) // columns)
    assert result["sprite"] == [columns * 28, rows * 28] and result["size"][0] >= 56
    i = result["index"]  # the first image shown: its tile's place in the sprite, at twice the size
    assert result["position"] == f"{-(i % columns) * 56}px {-(i // columns) * 56}px".replace("-0px", "0px")


# Reports, once the page has loaded, whether each picture decoded and at what size.
PICTURE_SIZES = ("window.addEventListener('load', () => { document.title = JSON.stringify("
                 "[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])); });")  # fmt: skip


def test_report_renders_in_chromium_with_every_picture_loaded(run, chromium, tmp_path):
    loaded = run_probe(chromium, (run["out"] / "report.html").read_text(), PICTURE_SIZES, tmp_path)
    sizes = []
    for path in run["pictures"].values():
        with Image.open(path) as image:
            sizes.append([True, *image.size])
    assert loaded == sizes
