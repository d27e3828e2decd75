"""Pictures drawn with matplotlib.

Figures are made with matplotlib.figure.Figure, not pyplot, so that writing a PNG never
needs a display or touches pyplot's global state; the book's functions, which should show
inline in Jupyter, pass in a pyplot figure instead.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .fileio import write_atomic

DPI = 100
HIGHLIGHT, MUTED = "tab:blue", "#b8c4d0"  # the predicted class's bar, the other bars
MISTAKE_COLUMNS = 6
# weights and evidence: red where a bright pixel adds to the score, blue where it takes away, white at 0
DIVERGING = colormaps["RdBu_r"].with_extremes(bad="white")


def image_grid(
    images: torch.Tensor | np.ndarray,
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
    fig: Figure | None = None,
) -> tuple[Figure, np.ndarray]:
    """Images in a num_rows x num_cols grid with optional titles, on fig or a new Figure.

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
    if fig is None:
        fig = Figure(figsize=(num_cols * scale, num_rows * scale))
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


def plot_curves(rows: list[dict], path: Path) -> None:
    """Training curves as a PNG: mean loss per example (left) and accuracies (right) per epoch.

    rows: one dict per epoch as in metrics.csv (epoch, train_loss, train_acc, test_acc; numbers or
    their CSV strings); val_acc, when rows have it, is drawn as a third accuracy curve.
    """
    fig = Figure(figsize=(11, 4.2), layout="constrained")
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
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def plot_comparison(runs: list[tuple[str, list[dict]]], path: Path) -> None:
    """Several runs' curves overlaid as a PNG: test accuracy (left) and training loss (right) per epoch,
    one colour per run, named in the legend.

    runs: (name, metrics.csv rows) per run, as plot_curves takes them.
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    acc_ax, loss_ax = fig.subplots(1, 2)
    for name, rows in runs:
        acc_ax.plot(*_series(rows, "test_acc"), marker="o", markersize=3, label=_shorten(name, 40))
        loss_ax.plot(*_series(rows, "train_loss"), marker="o", markersize=3, label=_shorten(name, 40))
    acc_ax.set(title="Test accuracy", xlabel="epoch", ylabel="fraction correct")
    loss_ax.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy per example")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=9)
    save_figure(fig, path)


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of the rows that hold a value under key."""
    kept = [row for row in rows if row.get(key) not in (None, "")]
    return [int(row["epoch"]) for row in kept], [float(row[key]) for row in kept]


def plot_confusion(confusion: torch.Tensor, names: Sequence[str], path: Path) -> None:
    """Row-normalised confusion matrix as a PNG, the fraction written in each cell.

    confusion: int64 counts [C, C], rows = true class, columns = predicted class; names: C labels.
    """
    counts = confusion.detach().cpu().double()
    fractions = (counts / counts.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    fig = Figure(figsize=(8.5, 7.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix (each row sums to 1)")
    for (i, j), value in np.ndenumerate(fractions):
        text = "0" if counts[i, j] == 0 else "<0.01" if value < 0.005 else f"{value:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if value > 0.5 else "black")
    fig.colorbar(image, ax=ax, shrink=0.85, label="fraction of the true class")
    save_figure(fig, path)


def plot_weights(weights: torch.Tensor, path: Path, title: str, titles: Sequence[str] | None = None) -> None:
    """Weight pictures as a PNG: one tile per unit in a grid, on one diverging colour scale centred on 0
    that reaches the 99.5th percentile of |weight| (a few larger values are drawn at its ends).

    weights: float [N, h, w] (fmnist.model.pixel_weights); titles: N labels written above the tiles.
    The grid is one image (white gaps between tiles), so it costs one imshow however many tiles.
    """
    tiles = weights.detach().cpu().double().numpy()
    n, h, w = tiles.shape
    columns = 5 if n == 10 else min(n, 16)
    rows = -(-n // columns)
    gap = max(1, h // 7)
    top = h // 4 if titles is not None else 0  # room for the labels, in pixels of the grid
    grid = np.full((rows * (top + h + gap) - gap, columns * (w + gap) - gap), np.nan)
    for i, tile in enumerate(tiles):
        y, x = (i // columns) * (top + h + gap) + top, (i % columns) * (w + gap)
        grid[y : y + h, x : x + w] = tile
    # not the largest: pixels that are almost always 0 get large weights from a standardisation with a
    # small std, and would wash out every other pixel
    limit = float(np.percentile(np.abs(tiles), 99.5)) or 1.0
    inches = min(1.6, 9 / columns)
    fig = Figure(figsize=(columns * inches + 1.4, rows * inches * (top + h) / h + 0.6), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(grid, cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest")
    for i, label in enumerate(titles or []):
        y, x = (i // columns) * (top + h + gap) + top, (i % columns) * (w + gap)
        ax.text(x + (w - 1) / 2, y - 1.5, label, ha="center", va="bottom", fontsize=10)
    _blank(ax)
    ax.set_title(title, fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, extend="both", label="weight per unit of pixel brightness")
    save_figure(fig, path)


def select_mistakes(labels: torch.Tensor, probs: torch.Tensor, n: int) -> torch.Tensor:
    """Indices int64 [<= n] of misclassified items, the most confident mistake first (ties: lower index).

    labels: int64 [N] true classes; probs: float [N, C] predicted probabilities (argmax = prediction).
    """
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != labels).nonzero().flatten()
    order = confidence[wrong].sort(descending=True, stable=True).indices
    return wrong[order[:n]]


def plot_mistakes(
    images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor, names: Sequence[str], path: Path, n: int = 24
) -> None:
    """Up to n misclassified images as a PNG grid titled "true / predicted (probability)".

    images: float [N, 1, 28, 28] in [0, 1]; labels: int64 [N]; probs: float [N, C]; most confident mistakes first.
    """
    chosen = select_mistakes(labels, probs, n)
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
    columns = min(len(chosen), MISTAKE_COLUMNS)
    fig = Figure(figsize=(columns * 2.2, -(-len(chosen) // columns) * 2.2))
    fig.suptitle("Misclassified: true / predicted (probability), most confident first", fontsize=12)
    image_grid(images[chosen], -(-len(chosen) // columns), columns, titles, fig=fig)  # lays out once, title included
    save_figure(fig, path)


def plot_predictions(
    images: torch.Tensor,
    probs: torch.Tensor,
    names: Sequence[str],
    path: Path,
    titles: Sequence[str],
    evidence: torch.Tensor | None = None,
) -> None:
    """One row per image as a PNG: the model's input on the left, the C class probabilities as bars on the right,
    and in between, when given, the image's evidence map.

    images: float [N, 1, 28, 28] in [0, 1]; probs: float [N, C]; titles: N strings (e.g. file names);
    evidence: float [N, 28, 28], pixel times weight for the top class (fmnist.model.evidence), drawn on
    a diverging scale centred on 0 and symmetric for each image.
    """
    pixels, probs = images.detach().cpu(), probs.detach().cpu()
    ratios = [1, 2.6] if evidence is None else [1, 1, 2.6]
    fig = Figure(figsize=(7.5 + 2.2 * (len(ratios) - 2), 2.2 * len(pixels)), layout="constrained")
    axes = fig.subplots(len(pixels), len(ratios), squeeze=False, width_ratios=ratios)
    for i, (image, p, title) in enumerate(zip(pixels, probs, titles, strict=True)):
        image_ax, bar_ax = axes[i, 0], axes[i, -1]
        image_ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
        _blank(image_ax)
        top = int(p.argmax())
        if evidence is not None:
            limit = float(evidence[i].abs().max()) or 1.0
            axes[i, 1].imshow(evidence[i].numpy(), cmap=DIVERGING, vmin=-limit, vmax=limit, interpolation="nearest")
            axes[i, 1].set_title(f"evidence for {names[top]}", fontsize=9)
            _blank(axes[i, 1])
        bar_ax.barh(range(len(names)), p.numpy(), color=[HIGHLIGHT if k == top else MUTED for k in range(len(names))])
        bar_ax.set_yticks(range(len(names)), names, fontsize=8)
        bar_ax.get_yticklabels()[top].set_fontweight("bold")
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        best = float(p[top])
        inside = best > 0.85  # no room right of the bar: write the value on it
        bar_ax.text(best - 0.02 if inside else best + 0.02, top, f"{best:.2f}", va="center", fontsize=8,
                    ha="right" if inside else "left", color="white" if inside else "black")  # fmt: skip
        bar_ax.set_title(_shorten(title), loc="left", fontsize=10)
    axes[-1, -1].set_xlabel("probability")
    if evidence is not None:
        fig.suptitle("evidence: pixel times weight; red pushed towards the class, blue away", fontsize=10)
    save_figure(fig, path)


def _shorten(text: str, limit: int = 60) -> str:
    """text, or its last limit - 1 characters after an ellipsis when longer."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def save_figure(fig: Figure, path: Path) -> None:
    """Render fig at DPI pixels per inch in the format path's suffix names (PNG when it names none)
    and write it to path atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix[1:].lower() or "png", dpi=DPI)
    write_atomic(path, buffer.getvalue())
