"""Pictures drawn with matplotlib.

Figures are made with matplotlib.figure.Figure, not pyplot, so that writing a PNG never
needs a display or touches pyplot's global state; the book's functions, which should show
inline in Jupyter, pass in a pyplot figure instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import matplotlib.backends.backend_agg  # noqa: F401  (see below)
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .fileio import write_atomic
from .metrics import most_confident_mistakes

# What the first savefig would import (matplotlib's Agg backend, Pillow's image formats) is imported with
# this module, which the commands import with stops held back (fileio.uninterrupted): a stop in the middle
# of an import may be swallowed, or leave a module half-imported.
Image.preinit()

Target = Path | BinaryIO  # where a picture goes: a file (its suffix names the format) or a stream (PNG)
DPI = 100
HIGHLIGHT, MUTED = "tab:blue", "#b8c4d0"  # the predicted class's bar, the other bars
MISTAKE_COLUMNS = 6
PICTURE_INCHES, ROW_INCHES = 1.2, 1.7  # plot_predictions: a picture's side; a row, its ten bars and its title
# weights and evidence: red where a bright pixel adds to the score, blue where it takes away, white at 0
DIVERGING = colormaps["RdBu_r"].with_extremes(bad="white")
GREY = colormaps["gray"].with_extremes(bad="white")  # pictures; white between the tiles of a grid


def image_grid(
    fig: Figure, images: torch.Tensor | np.ndarray, num_rows: int, num_cols: int, titles: Sequence[str] | None = None
) -> tuple[Figure, np.ndarray]:
    """Images in a num_rows x num_cols grid of Axes on fig, with optional titles (the book's show_images,
    whose caller may draw on each Axes; fmnist's own grids are one image, see plot_tiles).

    images: grey [N, H, W] or [N, 1, H, W], or colour [N, H, W, 3 or 4] (RGB or RGBA); floats
    in [0, 1] or uint8; N <= num_rows * num_cols. Returns the figure and the flat array of its
    Axes (cells beyond N are left blank).
    """
    pixels = torch.as_tensor(images).detach().cpu()
    if pixels.dim() == 4 and pixels.shape[1] == 1:
        pixels = pixels[:, 0]
    colour = pixels.dim() == 4 and pixels.shape[3] in (3, 4)
    if pixels.dim() != 3 and not colour:
        raise ValueError(f"images must be grey [N, H, W] or [N, 1, H, W], or colour [N, H, W, 3]; got "
                         f"shape {tuple(pixels.shape)} (channels-first colour: permute(0, 2, 3, 1) first)")  # fmt: skip
    axes: np.ndarray = fig.subplots(num_rows, num_cols, squeeze=False).flatten()
    vmax = 255 if pixels.dtype == torch.uint8 else 1
    for i, ax in enumerate(axes):
        _blank(ax)
        if i < len(pixels):
            if colour:  # RGB values are drawn as they are
                ax.imshow(pixels[i].numpy(), interpolation="nearest")
            else:
                ax.imshow(pixels[i].numpy(), cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
            if titles is not None and i < len(titles):
                ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig, axes


def _blank(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def plot_curves(rows: list[dict], path: Target) -> None:
    """Training curves as a PNG: mean loss per example (left) and accuracies (right) per epoch.

    rows: one dict per epoch as in metrics.csv (epoch, train_loss, train_acc, test_acc; numbers or
    their CSV strings); val_acc, when rows have it, is drawn as a third accuracy curve.
    """
    fig = Figure(figsize=(11, 4.2))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.22)  # fixed: no layout pass
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(*_series(rows, "train_loss"), marker="o", color="tab:blue", label="train loss")
    loss_ax.set(title="Loss", xlabel="epoch", ylabel="cross-entropy per example")
    accuracies = (
        ("train_acc", "train", "tab:blue"),
        ("val_acc", "validation", "tab:orange"),
        ("test_acc", "test", "tab:green"),
    )
    for key, label, color in accuracies:  # fixed colours: a series looks the same with or without validation
        epochs, values = _series(rows, key)
        if epochs:
            acc_ax.plot(epochs, values, marker="o", color=color, label=label)
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="fraction correct")
    # Fixed corners, where these curves are not: loc="best" tries every position, which is slow.
    for ax, corner in ((loss_ax, "upper right"), (acc_ax, "lower right")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(loc=corner)
    save_figure(fig, path)


def plot_comparison(runs: list[tuple[str, list[dict]]], path: Target) -> None:
    """Several runs' curves overlaid as a PNG: test accuracy (left) and training loss (right) per epoch,
    one colour per run, named in the legend.

    runs: (name, metrics.csv rows) per run, as plot_curves takes them.
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    acc_ax, loss_ax = fig.subplots(1, 2)
    for name, rows in runs:
        acc_ax.plot(*_series(rows, "test_acc"), marker="o", markersize=3, label=_literal(name, 40))
        loss_ax.plot(*_series(rows, "train_loss"), marker="o", markersize=3, label=_literal(name, 40))
    acc_ax.set(title="Test accuracy", xlabel="epoch", ylabel="fraction correct")
    loss_ax.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy per example")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    lines = acc_ax.get_lines()
    acc_ax.legend(lines, [line.get_label() for line in lines], fontsize=9)  # named: a "_name" is shown too
    save_figure(fig, path)


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of the rows that hold a value under key."""
    kept = [row for row in rows if row.get(key) not in (None, "")]
    return [int(row["epoch"]) for row in kept], [float(row[key]) for row in kept]


def plot_confusion(confusion: torch.Tensor, names: Sequence[str], path: Target) -> None:
    """Row-normalised confusion matrix as a PNG, the fraction written in each cell.

    confusion: int64 counts [C, C], rows = true class, columns = predicted class; names: C labels.
    """
    counts = confusion.detach().cpu().double()
    fractions = (counts / counts.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    fig = Figure(figsize=(8.5, 7.5))
    ax = fig.add_axes((0.16, 0.15, 0.68, 0.78))  # fixed, room for the rotated class names: no layout pass
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (each row sums to 1)")
    for (i, j), value in np.ndenumerate(fractions):
        text = "0" if counts[i, j] == 0 else "<0.01" if value < 0.005 else f"{value:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if value > 0.5 else "black")
    fig.colorbar(image, cax=fig.add_axes((0.86, 0.2, 0.025, 0.68)), label="fraction of the true class")
    save_figure(fig, path)


def plot_weights(weights: torch.Tensor, path: Target, title: str, titles: Sequence[str] | None = None) -> None:
    """Weight pictures as a PNG: one tile per unit in a grid, on one diverging colour scale centred on 0
    that reaches the 99.5th percentile of |weight| (a few larger values are drawn at its ends).

    weights: float [N, h, w] (fmnist.model.pixel_weights); titles: N labels written above the tiles.
    The grid is one image (white gaps between tiles), so it costs one imshow however many tiles.
    """
    tiles = weights.detach().cpu().double().numpy()
    n, h, w = tiles.shape
    columns = 5 if n == 10 else min(n, 16)
    grid, corners = _mosaic(tiles, columns, gap=max(1, h // 7), top=h // 4 if titles is not None else 0)
    # not the largest: pixels that are almost always 0 get large weights from a standardisation with a
    # small std, and would wash out every other pixel
    limit = float(np.percentile(np.abs(tiles), 99.5)) or 1.0
    inch = min(1.6, 9 / columns) / (w + 1)  # inches per pixel of the grid
    width, tall = grid.shape[1] * inch, grid.shape[0] * inch
    # laid out by hand, in inches from the top: title, grid, and a horizontal colour bar below it (beside
    # it, its label would not fit a single row of small filters); a layout engine cost a third of the time
    title_in, bar_gap, bar, under = 0.45, 0.2, 0.15, 0.6
    fig_w, fig_h = width + 0.4, title_in + tall + bar_gap + bar + under
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((0.2 / fig_w, 1 - (title_in + tall) / fig_h, width / fig_w, tall / fig_h))
    image = ax.imshow(grid, cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest", aspect="auto")
    for (y, x), label in zip(corners, titles or [], strict=False):
        ax.text(x + (w - 1) / 2, y - 1.5, label, ha="center", va="bottom", fontsize=10)
    _blank(ax)
    ax.set_title(title, fontsize=11)
    bar_w = min(width, 5.0)
    cax = fig.add_axes(((fig_w - bar_w) / 2 / fig_w, (under / fig_h), bar_w / fig_w, bar / fig_h))
    fig.colorbar(image, cax=cax, orientation="horizontal", extend="both", label="weight per unit of pixel brightness")
    save_figure(fig, path)


def _mosaic(tiles: np.ndarray, columns: int, gap: int, top: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tiles [N, h, w] in rows of columns as one float image, NaN around them (drawn in the colour map's
    "bad" colour, white here), gap pixels apart with top pixels of room above each for a label; returns
    the image and each tile's top-left corner (row, column) in it. One image draws in one imshow, however
    many tiles: a grid of N axes costs N layouts and N draws."""
    n, h, w = tiles.shape
    rows = -(-n // columns)
    grid = np.full((rows * (top + h + gap) - gap, columns * (w + gap) - gap), np.nan)
    corners = [((i // columns) * (top + h + gap) + top, (i % columns) * (w + gap)) for i in range(n)]
    for (y, x), tile in zip(corners, tiles, strict=True):
        grid[y : y + h, x : x + w] = tile
    return grid, corners


def plot_tiles(
    images: torch.Tensor,
    titles: Sequence[str],
    path: Target,
    columns: int,
    tile_inches: float,
    title: str | None = None,
) -> None:
    """Grey images with a label above each, in rows of columns, as one picture at path.

    images: float [N, 1, H, W] or [N, H, W] in [0, 1]; titles: N labels; tile_inches: the side of one image.
    Laid out by hand (no layout engine) so the cost grows with N only.
    """
    tiles = images.detach().cpu().reshape(len(images), *images.shape[-2:]).double().numpy()
    h = tiles.shape[1]
    label = 0.32 / tile_inches * h  # room for a 9-point label, in pixels of the tiles
    grid, corners = _mosaic(tiles, min(columns, len(tiles)), gap=round(h / 7), top=round(label))
    inch = tile_inches / h  # inches per pixel of the tiles
    heading = 0.45 if title else 0.0
    width, height = grid.shape[1] * inch + 0.2, grid.shape[0] * inch + 0.1 + heading
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0.1 / width, 0.05 / height, 1 - 0.2 / width, 1 - (0.15 + heading) / height))
    ax.imshow(grid, cmap=GREY, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    for (y, x), text in zip(corners, titles, strict=True):
        ax.text(x + (h - 1) / 2, y - 1.5, text, ha="center", va="bottom", fontsize=9)
    _blank(ax)
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.1 / height, va="top")
    save_figure(fig, path)


def plot_mistakes(
    images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, names: Sequence[str], path: Target, n: int = 24
) -> None:
    """Up to n misclassified images as a PNG grid titled "true / predicted (probability)".

    images: float [N, 1, 28, 28] in [0, 1]; labels: int64 [N]; probs: float [N, C]; most confident mistakes first.
    """
    chosen = most_confident_mistakes(labels, probs, n)
    if len(chosen) == 0:
        fig = Figure(figsize=(5, 1.2))
        fig.text(0.5, 0.5, "No misclassified images.", ha="center", va="center", fontsize=12)
        save_figure(fig, path)
        return
    confidence, predicted = probs[chosen].max(dim=1)
    titles = [
        f"{names[t]} / {names[p]} ({c:.2f})"
        for t, p, c in zip(labels[chosen].tolist(), predicted.tolist(), confidence.tolist(), strict=True)
    ]
    plot_tiles(images[chosen], titles, path, MISTAKE_COLUMNS, 1.8,
               "Misclassified: true / predicted (probability), most confident first")  # fmt: skip


def plot_predictions(
    images: torch.Tensor,
    probs: torch.Tensor,
    names: Sequence[str],
    path: Target,
    titles: Sequence[str],
    evidence: torch.Tensor | None = None,
) -> None:
    """One row per image as a picture at path: the model's input on the left, the C class probabilities as
    bars on the right, and in between, when given, the image's evidence map.

    images: float [N, 1, 28, 28] in [0, 1]; probs: float [N, C]; titles: N strings (e.g. file names);
    evidence: float [N, 28, 28], pixel times weight for the top class (fmnist.model.evidence), drawn on
    a diverging scale centred on 0 and symmetric for each image.
    Every column is one Axes for all rows, laid out by hand, so the cost grows with N only.
    """
    pixels, probs = images.detach().cpu()[:, 0].double().numpy(), probs.detach().cpu()
    n, c = probs.shape
    side = 28
    gap = round(side * (ROW_INCHES / PICTURE_INCHES - 1))  # between two rows' pictures, in their pixels
    pictures = [(_mosaic(pixels, 1, gap, 0)[0], GREY, 0.0, 1.0)]
    if evidence is not None:  # each map scaled by its own largest |value|, so each is centred and symmetric
        maps = evidence.detach().cpu().double()
        maps = (maps / maps.flatten(1).abs().amax(dim=1).clamp(min=1e-12)[:, None, None]).numpy()
        pictures.append((_mosaic(maps, 1, gap, 0)[0], DIVERGING, -1.0, 1.0))
    margin, bars_inches, labels_inches = 0.45, 3.6, 0.85
    width = 0.25 + len(pictures) * (PICTURE_INCHES + 0.25) + labels_inches + bars_inches + 0.3
    height = n * ROW_INCHES + 2 * margin
    fig = Figure(figsize=(width, height))
    bottom, tall = margin / height, n * ROW_INCHES / height
    x = 0.25
    for grid, cmap, vmin, vmax in pictures:
        ax = fig.add_axes((x / width, bottom, PICTURE_INCHES / width, tall))
        ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
        ax.set_ylim(n * (side + gap) - 0.5, -0.5)  # the last row's gap too, so rows line up with the bars
        _blank(ax)
        x += PICTURE_INCHES + 0.25
    bar_ax = fig.add_axes(((x + labels_inches) / width, bottom, bars_inches / width, tall))
    top = probs.argmax(dim=1)
    rows = np.arange(n)[:, None] * (c + 2) + np.arange(c) + 1.5  # each row: c bars below a line for its title
    colours = np.where(np.arange(c) == top.numpy()[:, None], HIGHLIGHT, MUTED)
    bar_ax.barh(rows.ravel(), probs.numpy().ravel(), height=0.8, color=colours.ravel())
    bar_ax.set(xlim=(0, 1), ylim=(n * (c + 2), 0), xlabel="probability", yticks=[])
    for i in range(n):
        k = int(top[i])
        bar_ax.text(0.01, i * (c + 2) + 0.6, _literal(titles[i]), fontsize=10, va="center")
        for j, name in enumerate(names):
            bar_ax.text(-0.02, rows[i, j], name, fontsize=8, ha="right", va="center",
                        fontweight="bold" if j == k else "normal")  # fmt: skip
        best = float(probs[i, k])
        inside = best > 0.85  # no room right of the bar: write the value on it
        bar_ax.text(best - 0.02 if inside else best + 0.02, rows[i, k], f"{best:.2f}", va="center", fontsize=8,
                    ha="right" if inside else "left", color="white" if inside else "black")  # fmt: skip
        if evidence is not None:
            fig.text((0.25 + 1.5 * PICTURE_INCHES + 0.25) / width, 1 - (margin + i * ROW_INCHES) / height,
                     f"evidence for {names[k]}", fontsize=8, ha="center", va="bottom")  # fmt: skip
    if evidence is not None:
        fig.suptitle("evidence: pixel times weight; red pushed towards the class, blue away", fontsize=10, y=1,
                     va="top")  # fmt: skip
    save_figure(fig, path)


def plot_search(settings: dict[str, tuple[list, str | list]], scores: Sequence[float], complete: Sequence[bool],
                path: Target) -> None:  # fmt: skip
    """A search's trials as a PNG: validation accuracy against each searched setting, one panel per setting.

    settings: name -> (the trials' values, their scale: "log", "linear", or the list of values searched, drawn
    in that order); scores: each trial's validation accuracy in [0, 1] (a pruned trial's at its
    last epoch); complete: True for the trials that trained all their epochs (filled dots; pruned ones hollow).
    """
    columns = min(3, len(settings))
    rows = -(-len(settings) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.4 * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False)).flatten()
    finished = np.asarray(complete, dtype=bool)
    y = np.asarray(scores, dtype=float)
    for ax, (name, (values, scale)) in zip(axes, settings.items(), strict=False):
        if isinstance(scale, list):
            x = np.array([scale.index(v) for v in values], dtype=float)
            ax.set_xticks(range(len(scale)), [str(v) for v in scale])
            ax.set_xlim(-0.5, len(scale) - 0.5)
        else:
            x = np.asarray(values, dtype=float)
            ax.set_xscale(scale)
        ax.scatter(x[~finished], y[~finished], facecolors="none", edgecolors=MUTED, label="pruned")
        ax.scatter(x[finished], y[finished], color=HIGHLIGHT, label="all epochs")
        ax.set(xlabel=name, ylabel="validation accuracy")
        ax.grid(alpha=0.3)
    for ax in axes[len(settings) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    fig.suptitle("Validation accuracy of each trial against each searched setting")
    save_figure(fig, path)


def plot_history(numbers: Sequence[int], scores: Sequence[float], path: Target) -> None:
    """A search's progress as a PNG: the validation accuracy of each trial that trained all its epochs, by
    trial number, and the best so far as a step line. numbers: trial numbers, increasing; scores: in [0, 1]."""
    fig = Figure(figsize=(8, 4))
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9)
    ax = fig.subplots()
    ax.scatter(numbers, scores, color=MUTED, label="trial")
    ax.step(numbers, np.maximum.accumulate(np.asarray(scores, dtype=float)), where="post", color=HIGHLIGHT,
            label="best so far")  # fmt: skip
    ax.set(title="Best validation accuracy so far", xlabel="trial", ylabel="validation accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_importance(importances: dict[str, float], path: Target) -> None:
    """The searched settings' importances as a PNG of horizontal bars, the most important on top.
    importances: name -> share in [0, 1] (summing to 1)."""
    names = list(importances)[::-1]
    fig = Figure(figsize=(7, 1.2 + 0.45 * len(names)), layout="constrained")
    ax = fig.subplots()
    ax.barh(names, [importances[name] for name in names], color=HIGHLIGHT)
    for i, name in enumerate(names):
        ax.text(importances[name], i, f" {importances[name]:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, 1.1)
    ax.set(title="Importance of each setting for validation accuracy (PED-ANOVA)", xlabel="share of importance")
    save_figure(fig, path)


def _literal(text: str, limit: int = 60) -> str:
    """A name (a run's folder, a picture file) to draw as it is: its last limit - 1 characters after an
    ellipsis when longer, bytes that are not UTF-8 as "�", and its dollar signs escaped, so that
    matplotlib never reads it as mathtext."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    shown = text if len(text) <= limit else "…" + text[-(limit - 1) :]
    return shown.replace("$", r"\$")


def png(plot: Callable[..., None], *args: object, **kwargs: object) -> bytes:
    """The PNG bytes of the picture plot (one of this module's plot_ functions) draws from args."""
    buffer = io.BytesIO()
    plot(*args, **kwargs, path=buffer)
    return buffer.getvalue()


def save_figure(fig: Figure, path: Target, tight: bool = False) -> None:
    """Render fig at DPI pixels per inch to path: a file, written atomically in the format its suffix
    names (PNG when it names none), or a binary stream (PNG); with tight, cropped to what is drawn."""
    options = {"dpi": DPI, "bbox_inches": "tight" if tight else None}
    if not isinstance(path, Path):
        fig.savefig(path, format="png", **options)
        return
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix[1:].lower() or "png", **options)
    write_atomic(path, buffer.getvalue())
