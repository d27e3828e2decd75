"""report.html, compare.html and tune.html: self-contained pages (inline CSS and script, pictures as data: URIs).

The page loads nothing from anywhere (its Content-Security-Policy forbids it), so it can be
mailed, archived or opened offline. Its one script (SCRIPT, allowed by its hash and by nothing
else) makes the confusion matrix and the per-class table clickable: it shows the test images of
a cell, or a class's most confident mistakes, cut from one sprite picture of the whole test set.
Without JavaScript every table and picture still shows.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zlib
from html import escape
from typing import NamedTuple

import numpy as np
from PIL import Image

from .settings import HEADLINE

CAPTIONS = {
    "curves": "Training curves: mean cross-entropy per training example, and accuracy per epoch.",
    "mistakes": "The test images the model got wrong with the highest confidence: true / predicted (probability).",
    "weights": "The first layer's weights as pictures in pixel space (softmax regression: one template per "
    "class). Red: a bright pixel there raises the score; blue: it lowers it; white: no effect.",
    "compare": "Every run's test accuracy and training loss per epoch.",
    "accuracy": "Validation accuracy of every trial against each searched setting: filled, the trials that trained "
    "all their epochs; hollow, the ones pruned (at their last epoch).",
    "history": "The validation accuracy of each trial that trained all its epochs, and the best so far.",
    "importance": "How much each searched setting decides whether a trial is among the best (PED-ANOVA, Optuna's "
    "importance evaluator that needs no other library).",
}

# The browser itself refuses any request: only the inline style and data: pictures may load.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

THUMB = 56  # pixels on the page of one test image in the explorer: its 28 pixels, twice as large
SPRITE_COLUMNS = 100  # test images per row of the sprite
SPRITE_LEVELS = 16  # grey levels: the sprite is 4-bit, half the bytes of 8-bit and alike at this size
MISTAKES_SHOWN = 24  # a class's most confident mistakes shown when its name is clicked

# Fills #viewer with the test images of a clicked confusion cell (td[data-true][data-predicted]) or of
# a clicked class's mistakes (td[data-class]), from the JSON in #test-set. Constant: the page's
# Content-Security-Policy allows exactly this script by its SHA-256.
SCRIPT = """(() => {
  const d = JSON.parse(document.getElementById("test-set").textContent);
  const viewer = document.getElementById("viewer");
  document.body.classList.add("js");
  const thumb = (i) => {
    const figure = document.createElement("figure");
    figure.className = "thumb";
    figure.dataset.index = i;
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.style.backgroundPosition = `${-(i % d.columns) * d.size}px ${-Math.floor(i / d.columns) * d.size}px`;
    const caption = document.createElement("figcaption");
    caption.textContent = `${d.names[d.labels[i]]} / ${d.names[d.predicted[i]]} (${d.prob[i].toFixed(2)})`;
    figure.append(tile, caption);
    return figure;
  };
  const show = (heading, items) => {
    viewer.hidden = false;
    viewer.querySelector("h3").textContent = heading;
    viewer.querySelector(".thumbs").replaceChildren(...items.map(thumb));
    viewer.scrollIntoView({ block: "nearest" });
  };
  const select = (keep) => d.labels.map((_, i) => i).filter(keep).sort((a, b) => d.prob[b] - d.prob[a] || a - b);
  const clickable = (cell, action) => {
    cell.tabIndex = 0;
    cell.setAttribute("role", "button");
    cell.addEventListener("click", () => {
      document.querySelector("td.selected")?.classList.remove("selected");
      cell.classList.add("selected");
      action();
    });
    cell.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); cell.click(); }
    });
  };
  for (const cell of document.querySelectorAll("td[data-true]")) {
    const t = +cell.dataset.true, p = +cell.dataset.predicted;
    clickable(cell, () => {
      const items = select((i) => d.labels[i] === t && d.predicted[i] === p);
      show(`true ${d.names[t]}, predicted ${d.names[p]}: ${items.length} test images, most confident first`, items);
    });
  }
  for (const cell of document.querySelectorAll("td[data-class]")) {
    const c = +cell.dataset.class;
    clickable(cell, () => {
      const items = select((i) => d.labels[i] === c && d.predicted[i] !== c);
      const shown = items.slice(0, d.mistakes);
      show(`${d.names[c]}: the ${shown.length} most confident of its ${items.length} mistakes`, shown);
    });
  }
})();"""
SCRIPT_POLICY = f"{POLICY}; script-src 'sha256-{base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()}'"

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h3 { font-size: 16px; margin: 0 0 8px; }
h2 { font-size: 19px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
.subtitle { color: #59636e; margin: 0 0 20px; }
.stats { display: flex; flex-wrap: wrap; gap: 16px; }
.stat { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 18px; min-width: 120px; }
.stat .value { font-size: 22px; font-weight: 600; }
.stat .name { color: #59636e; font-size: 13px; }
.stat.main { background: #ddf4ff; border-color: #54aeff; }
.stat.main .value { font-size: 40px; color: #0550ae; }
.columns { display: flex; flex-wrap: wrap; gap: 32px; align-items: flex-start; }
table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 4px 12px; border-bottom: 1px solid #eaeef2; text-align: left; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.key { color: #59636e; }
td.wrap { word-break: break-all; max-width: 480px; }
tbody tr:hover { background: #f6f8fa; }
.bar { display: inline-block; height: 10px; background: #54aeff; border-radius: 2px; vertical-align: middle; }
figure { margin: 16px 0 28px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #59636e; font-size: 14px; margin-top: 6px; }
td.best { font-weight: 700; }
table.confusion td { text-align: right; min-width: 38px; font-variant-numeric: tabular-nums; }
table.confusion th { font-size: 13px; }
.js-only { display: none; }
.js .js-only { display: block; }
.hint { color: #59636e; font-size: 14px; }
.js td[role=button] { cursor: pointer; }
.js td[role=button]:hover, .js td[role=button]:focus { outline: 2px solid #0969da; outline-offset: -2px; }
.js td.selected { outline: 3px solid #cf222e; outline-offset: -3px; }
#viewer { margin: 16px 0; padding: 12px; border: 1px solid #d0d7de; border-radius: 8px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
figure.thumb { margin: 0; width: 84px; }
figure.thumb figcaption { font-size: 11px; line-height: 1.3; margin-top: 2px; }
.tile { image-rendering: pixelated; border: 1px solid #eaeef2; }
"""


def report_page(
    run: str,
    *,
    config: dict,
    rows: list[dict],
    summary: dict,
    per_class: list[dict],
    confused: list[dict],
    confusion: np.ndarray,
    explorer: str,
    pictures: dict[str, bytes],
) -> bytes:
    """The run's report, one self-contained HTML page, for the run named run.

    config: config.json's content; rows: metrics.csv rows; summary: summary.json (test_acc etc. in [0, 1]);
    per_class: fmnist.metrics.per_class rows; confused: fmnist.metrics.most_confused rows;
    confusion: int counts [C, C] (row = true class); explorer: what report.explorer makes of the test set;
    pictures: name -> PNG bytes, embedded in order (names of CAPTIONS get their caption).
    """
    names = [row["label"] for row in per_class]
    body = [
        f"<h1>fmnist run {escape(run)}</h1>",
        f'<p class="subtitle">{escape(_describe(config))}</p>',
        _stats(summary),
        "<h2>Test set, class by class</h2>",
        '<div class="columns">',
        f"<div><h3>Precision and recall per class</h3>{_per_class_table(per_class)}"
        '<p class="hint js-only">Click a class to see its most confident mistakes.</p></div>',
        f"<div><h3>Most confused pairs</h3>{_confused_table(confused)}</div>",
        "</div>",
        "<h2>Confusion matrix</h2>",
        '<p class="hint">Test images per true class (rows) and predicted class (columns); the shade is the '
        "fraction of the row.</p>",
        _confusion_table(confusion, names),
        '<p class="hint js-only">Click a cell to see its test images.</p>',
        '<section id="viewer" hidden><h3></h3><div class="thumbs"></div></section>',
        "<h2>Pictures</h2>",
        *(_figure(name, picture) for name, picture in pictures.items()),
        "<h2>Per epoch</h2>",
        _epoch_table(rows),
        "<h2>Configuration</h2>",
        _config_table(config),
    ]
    return _page(f"fmnist report: {run}", body, explorer)


def comparison_page(result: dict, picture: bytes) -> bytes:
    """fmnist.compare's result (its tables) and picture (PNG bytes) as one self-contained HTML page."""
    table, best = result["runs"], result["best"]
    head = _row(["run", "model", "recipe", "epochs", "test accuracy", "best epoch", "seconds", "parameters"], "th",
                numeric={3, 4, 5, 6, 7})  # fmt: skip
    body = []
    for row in table:
        cells = [escape(row["run"]), escape(str(row["model"])), escape(str(row["recipe"])), str(row["epochs"]),
                 _best(_percent(row["test_acc"]), row["run"] in best["test_acc"]), str(row["best_epoch"]),
                 _best(f"{row['seconds']:.1f}", row["run"] in best["seconds"]),
                 _best(f"{row['parameters']:,}", row["run"] in best["parameters"])]  # fmt: skip
        body.append(_html_row(cells, "td", {3, 4, 5, 6, 7}))
    names = [row["run"] for row in table]
    class_head = _row(["class", *names], "th", numeric=set(range(1, len(names) + 1)))
    class_body = []
    for label, winners in result["class_winners"].items():
        cells = [_best(_percent(row["per_class"][label]), row["run"] in winners) for row in table]
        class_body.append(_html_row([escape(label), *cells], "td", set(range(1, len(names) + 1))))
    wins = [str(sum(name in winners for winners in result["class_winners"].values())) for name in names]
    class_body.append(_html_row(["<b>classes won</b>", *wins], "td", set(range(1, len(names) + 1))))
    failed = "".join(f"<li>{escape(f['error'])}</li>" for f in result["failed"])
    page = [
        f"<h1>fmnist: {len(table)} runs compared</h1>",
        '<p class="subtitle">Each model scored again on the test set. In bold, the best of each column (highest '
        "accuracy, fewest seconds, fewest parameters) and the best run for each class.</p>",
        _table(head, body),
        *([f"<h3>Left out</h3><ul>{failed}</ul>"] if failed else []),
        "<h2>Test accuracy per class</h2>",
        _table(class_head, class_body),
        "<h2>Curves</h2>",
        _figure("compare", picture),
    ]
    return _page("fmnist: runs compared", page)


def tune_page(study: str, subtitle: str, stats: list[tuple[str, str]], best: list[tuple[str, str]], run_link: str,
              space: list[tuple[str, str]], columns: list[str], trials: list[list[str]], pictures: dict[str, bytes],
              notes: list[str]) -> bytes:  # fmt: skip
    """fmnist tune's sweep as one self-contained page (tune.html).

    study: the study's name; subtitle: the search in a sentence; stats: (name, value) boxes, the first the
    largest; best: (setting, value) rows of the best trial's recipe; run_link: the relative path of the run
    folder it was trained into (its report.html is linked); space: (setting, what was tried) rows; columns and
    trials: the table of every trial (text cells); pictures: name -> PNG bytes, embedded in order with their
    CAPTIONS; notes: sentences shown under the pictures (e.g. why one is missing).
    """
    boxes = "".join(_stat(name, value, "stat main" if i == 0 else "stat") for i, (name, value) in enumerate(stats))
    numeric = {0, *range(2, len(columns))}
    page = [
        f"<h1>fmnist tune: {escape(study)}</h1>",
        f'<p class="subtitle">{escape(subtitle)}</p>',
        f'<div class="stats">{boxes}</div>',
        "<h2>The best trial</h2>",
        f'<p>Trained again on the whole training set and scored once on the test set: the run folder '
        f'<a href="{escape(run_link)}/report.html">{escape(run_link)}</a>.</p>',
        _pairs_table(("setting", "value"), best),
        "<h2>What was searched</h2>",
        _pairs_table(("setting", "tried"), space),
        "<h2>Pictures</h2>",
        *(_figure(name, picture) for name, picture in pictures.items()),
        *(f'<p class="hint">{escape(note)}</p>' for note in notes),
        "<h2>Every trial</h2>",
        _table(_row(columns, "th", numeric), [_row(cells, "td", numeric) for cells in trials]),
    ]
    return _page(f"fmnist tune: {study}", page)


def _pairs_table(head: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    body = [f'<tr><td class="key">{escape(key)}</td><td class="wrap">{escape(value)}</td></tr>' for key, value in rows]
    return _table(_row(list(head), "th", numeric=set()), body)


def _best(text: str, best: bool) -> str:
    """Escaped text, in bold with a * when best."""
    return f"<b>{escape(text)}*</b>" if best else escape(text)


def _page(title: str, body: list[str], script: str = "") -> bytes:
    """A whole HTML page: STYLE, body, and script (with the policy that allows SCRIPT) when given."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{SCRIPT_POLICY if script else POLICY}">',
            f"<title>{escape(title)}</title>",
            f"<style>{STYLE}</style></head>",
            "<body><main>",
            *body,
            "</main>",
            script,
            "</body></html>",
            "",
        ]
    ).encode("utf-8", "replace")  # a path that is not valid UTF-8 (its bytes decoded as surrogates) shows "?"


class Sprite(NamedTuple):
    """The test images in one PNG (see sprite): its data: URI, and its size in images."""

    uri: str
    columns: int
    rows: int


def explorer(sprite: Sprite, labels: np.ndarray, probs: np.ndarray, names: list[str]) -> str:
    """The page's clickable test set, for report_page: the sprite of the test images as a style rule,
    the labels, predictions and probabilities as JSON, and SCRIPT, which shows them.

    sprite: sprite(test images); labels: their classes, ints [N]; probs: the model's probabilities [N, C];
    names: the C class names.
    """
    columns, rows = sprite.columns, sprite.rows
    test_set = {
        "names": names,
        "labels": np.asarray(labels).tolist(),
        "predicted": np.asarray(probs).argmax(axis=1).tolist(),
        "prob": np.asarray(probs, np.float64).max(axis=1).round(3).tolist(),
        "columns": columns,
        "size": THUMB,
        "mistakes": MISTAKES_SHOWN,
    }
    style = (f".tile {{ width: {THUMB}px; height: {THUMB}px; background-image: url({sprite.uri}); "
             f"background-size: {columns * THUMB}px {rows * THUMB}px; }}")  # fmt: skip
    data = json.dumps(test_set, separators=(",", ":")).replace("</", "<\\/")  # JSON cannot end the element
    return (f"<style>{style}</style>\n<script type=\"application/json\" id=\"test-set\">{data}</script>\n"
            f"<script>{SCRIPT}</script>")  # fmt: skip


def sprite(images: np.ndarray) -> Sprite:
    """The images [N, h, w] (floats in [0, 1]) in one grey PNG, image i at row i // columns and
    column i % columns, with SPRITE_LEVELS grey levels (about 70 ms for the 10,000 test images)."""
    n, h, w = images.shape
    columns = min(n, SPRITE_COLUMNS)
    rows = -(-n // columns)
    levels = np.zeros((rows * columns, h, w), np.uint8)
    levels[:n] = np.rint(np.clip(images, 0, 1) * (SPRITE_LEVELS - 1))
    grid = levels.reshape(rows, columns, h, w).transpose(0, 2, 1, 3).reshape(rows * h, columns * w)
    picture = Image.frombytes("P", (columns * w, rows * h), grid.tobytes())
    picture.putpalette([round(255 * k / (SPRITE_LEVELS - 1)) for k in range(SPRITE_LEVELS) for _ in range(3)])
    buffer = io.BytesIO()
    # run-length coding: 4% smaller than zlib's default at level 6, in a quarter of the time
    picture.save(buffer, format="PNG", bits=4, compress_type=zlib.Z_RLE)
    return Sprite(f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}", columns, rows)


def _describe(config: dict) -> str:
    """The recipe in one line: "model softmax, recipe seed, epochs 10, batch_size 256, ..." (settings.HEADLINE)."""
    return ", ".join(f"{key} {config[key]}" for key in HEADLINE if key in config)


def _stats(summary: dict) -> str:
    """The headline numbers as boxes, the test accuracy first and largest."""
    boxes = [_stat("test accuracy", _percent(summary["test_acc"]), "stat main")]
    if "train_acc" in summary:
        boxes.append(_stat("train accuracy", _percent(summary["train_acc"])))
    if "train_loss" in summary:
        boxes.append(_stat("train loss", _number(summary["train_loss"])))
    if "epochs" in summary:
        boxes.append(_stat("epochs", str(summary["epochs"])))
    if "seconds" in summary:
        boxes.append(_stat("seconds", f"{float(summary['seconds']):.1f}"))
    return f'<div class="stats">{"".join(boxes)}</div>'


def _stat(name: str, value: str, kind: str = "stat") -> str:
    return f'<div class="{kind}"><div class="value">{escape(value)}</div><div class="name">{escape(name)}</div></div>'


def _per_class_table(per_class: list[dict]) -> str:
    """The per-class table; each class's name cell carries data-class for SCRIPT."""
    head = _row(["class", "test images", "precision", "recall", "accuracy"], "th", {1, 2, 3, 4}, "<th></th>")
    body = []
    for row in per_class:
        cells = [str(row["support"])] + [_percent(row[k]) for k in ("precision", "recall", "accuracy")]
        bar = f'<td><span class="bar" style="width:{100 * float(row["accuracy"]):.0f}px"></span></td>'
        name = f'<td data-class="{int(row["index"])}">{escape(row["label"])}</td>'
        body.append(_row(cells, "td", {0, 1, 2, 3}, bar, lead=name))
    return _table(head, body)


def _confusion_table(confusion: np.ndarray, names: list[str]) -> str:
    """Counts [C, C] as a table, each cell shaded by its fraction of the row and carrying
    data-true and data-predicted for SCRIPT."""
    counts = np.asarray(confusion)
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    head = "<tr><th>true \\ predicted</th>" + "".join(f"<th>{escape(name)}</th>" for name in names) + "</tr>"
    body = []
    for i, name in enumerate(names):
        cells = []
        for j, fraction in enumerate(fractions[i]):
            shade = f"background: rgba(9, 105, 218, {fraction:.3f}); color: {'#fff' if fraction > 0.5 else '#1f2328'}"
            cells.append(f'<td data-true="{i}" data-predicted="{j}" title="{fraction:.3f} of the row" '
                         f'style="{shade}">{counts[i, j]}</td>')  # fmt: skip
        body.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>")
    return _table(head, body).replace("<table>", '<table class="confusion">', 1)


def _confused_table(confused: list[dict]) -> str:
    head = _row(["true class", "predicted as", "test images"], "th", numeric={2})
    body = [_row([row["true"], row["predicted"], str(row["count"])], "td", numeric={2}) for row in confused]
    if not body:
        body = ['<tr><td colspan="3">no test image was misclassified</td></tr>']
    return _table(head, body)


def _epoch_table(rows: list[dict]) -> str:
    columns = list(rows[0]) if rows else []
    numeric = set(range(len(columns)))
    body = [_row([_metric(key, row[key]) for key in columns], "td", numeric) for row in rows]
    return _table(_row(columns, "th", numeric), body)


def _config_table(config: dict) -> str:
    return _pairs_table(("setting", "value"), _flatten(config))


def _flatten(config: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as (dotted.key, text) pairs, in order."""
    items = []
    for key, value in config.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", str(value)))
    return items


def _figure(name: str, png: bytes) -> str:
    """The PNG picture embedded as a data: URI, with its caption."""
    encoded = base64.b64encode(png).decode("ascii")
    caption = CAPTIONS.get(name, name)
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{escape(name)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _table(head: str, body: list[str]) -> str:
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _row(cells: list[str], tag: str, numeric: set[int], extra: str = "", lead: str = "") -> str:
    """A table row of escaped cells (tag "td" or "th"), right-aligned where numeric holds the cell's index,
    between the HTML lead and extra."""
    return _html_row([escape(cell) for cell in cells], tag, numeric, extra, lead)


def _html_row(cells: list[str], tag: str, numeric: set[int], extra: str = "", lead: str = "") -> str:
    """_row for cells that are HTML already."""
    parts = [lead]
    for i, cell in enumerate(cells):
        align = ' class="num"' if i in numeric else ""
        parts.append(f"<{tag}{align}>{cell}</{tag}>")
    return f"<tr>{''.join(parts)}{extra}</tr>"


def _metric(column: str, value: object) -> str:
    """A metrics.csv value (number or CSV text) as table text."""
    if column == "epoch":
        return str(int(value))
    if column == "seconds":
        return f"{float(value):.2f}"
    return _number(value)


def _number(value: object) -> str:
    return f"{float(value):.4f}"


def _percent(value: object) -> str:
    return f"{100 * float(value):.2f}%"
