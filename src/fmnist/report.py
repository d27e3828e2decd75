"""report.html: one self-contained page about a run (inline CSS, pictures as data: URIs, no scripts).

The page loads nothing from anywhere (its Content-Security-Policy forbids it), so it can be
mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import mimetypes
from html import escape
from pathlib import Path

from .fileio import write_atomic

CAPTIONS = {
    "curves": "Training curves: mean cross-entropy per training example, and accuracy per epoch.",
    "confusion": "Confusion matrix on the test set: each row is a true class, split over the predicted classes.",
    "mistakes": "The test images the model got wrong with the highest confidence: true / predicted (probability).",
}

# The browser itself refuses any request: only the inline style and data: pictures may load.
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

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
"""


def write_report(
    path: Path,
    *,
    config: dict,
    rows: list[dict],
    summary: dict,
    per_class: list[dict],
    confused: list[dict],
    pictures: dict[str, Path],
) -> None:
    """Write the run's report as one self-contained HTML file at path (atomically).

    config: config.json's content; rows: metrics.csv rows; summary: summary.json (test_acc etc. in [0, 1]);
    per_class: fmnist.metrics.per_class rows; confused: fmnist.metrics.most_confused rows;
    pictures: name -> PNG path, embedded in order ("curves", "confusion", "mistakes" get captions).
    """
    run = path.parent.name or "run"
    body = [
        f"<h1>fmnist run {escape(run)}</h1>",
        f'<p class="subtitle">{escape(_describe(config))}</p>',
        _stats(summary),
        "<h2>Test set, class by class</h2>",
        '<div class="columns">',
        f"<div><h3>Precision and recall per class</h3>{_per_class_table(per_class)}</div>",
        f"<div><h3>Most confused pairs</h3>{_confused_table(confused)}</div>",
        "</div>",
        "<h2>Pictures</h2>",
        *(_figure(name, picture) for name, picture in pictures.items()),
        "<h2>Per epoch</h2>",
        _epoch_table(rows),
        "<h2>Configuration</h2>",
        _config_table(config),
    ]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">',
            f"<title>fmnist report: {escape(run)}</title>",
            f"<style>{STYLE}</style></head>",
            "<body><main>",
            *body,
            "</main></body></html>",
            "",
        ]
    )
    write_atomic(path, page.encode())


def _describe(config: dict) -> str:
    """The recipe in one line: "model softmax, epochs 10, batch_size 256, ..."."""
    keys = ("model", "recipe", "epochs", "batch_size", "optimizer", "lr", "schedule", "normalize", "seed", "device")
    return ", ".join(f"{key} {config[key]}" for key in keys if key in config)


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
    head = _row(["class", "test images", "precision", "recall", "accuracy"], "th", {1, 2, 3, 4}, "<th></th>")
    body = []
    for row in per_class:
        cells = [row["label"], str(row["support"])] + [_percent(row[k]) for k in ("precision", "recall", "accuracy")]
        bar = f'<td><span class="bar" style="width:{100 * float(row["accuracy"]):.0f}px"></span></td>'
        body.append(_row(cells, "td", {1, 2, 3, 4}, bar))
    return _table(head, body)


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
    body = [f'<tr><td class="key">{escape(key)}</td><td class="wrap">{escape(value)}</td></tr>'
            for key, value in _flatten(config)]  # fmt: skip
    return _table(_row(["setting", "value"], "th", numeric=set()), body)


def _flatten(config: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts as (dotted.key, text) pairs, in order."""
    items = []
    for key, value in config.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", str(value)))
    return items


def _figure(name: str, picture: Path) -> str:
    """The picture file embedded as a data: URI, with its caption."""
    mime = mimetypes.guess_type(picture.name)[0] or "image/png"
    encoded = base64.b64encode(picture.read_bytes()).decode("ascii")
    caption = CAPTIONS.get(name, name)
    return (
        f'<figure><img src="data:{mime};base64,{encoded}" alt="{escape(name)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _table(head: str, body: list[str]) -> str:
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _row(cells: list[str], tag: str, numeric: set[int], extra: str = "") -> str:
    """A table row of escaped cells (tag "td" or "th"), right-aligned where numeric holds the cell's index."""
    parts = []
    for i, cell in enumerate(cells):
        align = ' class="num"' if i in numeric else ""
        parts.append(f"<{tag}{align}>{escape(cell)}</{tag}>")
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
