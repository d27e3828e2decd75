"""Pictures: each plot writes a real PNG of the expected shape, showing what it should.

The figures are caught on their way to savefig, so the tests look at what was drawn (titles,
cell texts, bar colours, images) as well as at the PNG file.
"""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from PIL import Image

from fmnist import metrics, plots, rundir
from fmnist.data import LABELS

NAMES = list(LABELS)


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def rows_for(epochs: int, val: bool = False) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train_loss": 1 / e, "train_acc": 0.7 + e / 100, "test_acc": 0.69 + e / 100, "seconds": 0.3}
        if val:
            row["val_acc"] = 0.68 + e / 100
        rows.append(row)
    return rows


def orange_pixels(path) -> int:
    """Pixels of matplotlib's second line colour (tab:orange), used only by the validation curve."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(rgb - (255, 127, 14)).sum(axis=2) < 30).sum())


def test_curves_png_from_metrics_csv_draws_validation_only_when_present(tmp_path):
    rundir.write_metrics(tmp_path / "metrics.csv", rows_for(4))
    with open(tmp_path / "metrics.csv") as f:
        csv_rows = list(csv.DictReader(f))  # strings, as a reader of metrics.csv gets them
    plots.plot_curves(csv_rows, tmp_path / "curves.png")
    plots.plot_curves(rows_for(4, val=True), tmp_path / "curves-val.png")
    width, height = png_size(tmp_path / "curves.png")
    assert width > 2 * height >= 600  # two panels side by side
    assert orange_pixels(tmp_path / "curves.png") == 0
    assert orange_pixels(tmp_path / "curves-val.png") > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "curves-val.png",
        "curves.png",
        "metrics.csv",
    ]  # no temp files


def test_curves_axes_are_labelled_with_integer_epochs(tmp_path, drawn):
    plots.plot_curves(rows_for(3, val=True), tmp_path / "curves.png")
    loss_ax, acc_ax = drawn[0].axes
    assert [line.get_label() for line in acc_ax.get_lines()] == ["train", "validation", "test"]
    for ax in (loss_ax, acc_ax):
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() and ax.get_legend() is not None
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_confusion_cells_are_row_fractions(tmp_path, drawn):
    counts = torch.zeros(10, 10, dtype=torch.int64)
    counts[0, 0], counts[0, 1] = 3, 1  # row 0: 0.75 and 0.25
    counts[1, 1] = 1000
    counts[1, 2] = 1  # 1/1001 < 0.005
    # rows 2-9 hold no images: drawn as zeros, no division by zero
    plots.plot_confusion(counts, NAMES, tmp_path / "confusion.png")
    width, height = png_size(tmp_path / "confusion.png")
    assert 500 <= height <= width <= 1600
    ax = drawn[0].axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert len(cells) == 100
    assert cells[0, 0].get_text() == "0.75" and cells[0, 1].get_text() == "0.25" and cells[0, 2].get_text() == "0"
    assert cells[1, 1].get_text() == "1.00" and cells[1, 2].get_text() == "<0.01"
    assert cells[5, 5].get_text() == "0"
    assert to_rgba(cells[1, 1].get_color()) == to_rgba("white") and to_rgba(cells[0, 1].get_color()) == to_rgba("black")
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES == [t.get_text() for t in ax.get_yticklabels()]
    assert len(drawn[0].axes) == 2  # the matrix and its colour bar


def test_most_confident_mistakes_takes_wrong_items_most_confident_first():
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    probs = torch.tensor(
        [
            [0.9, 0.1, 0, 0, 0, 0],  # right
            [0.6, 0.4, 0, 0, 0, 0],  # wrong, 0.6
            [0, 0.05, 0.05, 0.9, 0, 0],  # wrong, 0.9
            [0, 0, 0, 1.0, 0, 0],  # right
            [0, 0, 0, 0, 0.4, 0.6],  # wrong, 0.6: a tie with item 1, which comes first
            [0, 0, 0, 0, 0.7, 0.3],  # wrong, 0.7
        ]
    )
    assert metrics.most_confident_mistakes(labels, probs, 10).tolist() == [2, 5, 1, 4]
    assert metrics.most_confident_mistakes(labels, probs, 2).tolist() == [2, 5]
    assert metrics.most_confident_mistakes(labels, torch.eye(6), 10).tolist() == []


def labelled_tiles(ax, side: int = 28) -> list[tuple[str, np.ndarray]]:
    """(label, pixels) of each tile of a plots.plot_tiles grid: the label is drawn centred just above its
    tile, so its position says where the tile is in the grid's one image."""
    grid = ax.images[0].get_array()
    tiles = []
    for text in ax.texts:
        x, y = text.get_position()
        left, top = round(x - (side - 1) / 2), round(y + 1.5)
        tiles.append((text.get_text(), np.ma.filled(grid[top : top + side, left : left + side], np.nan)))
    return tiles


def test_mistakes_grid_shows_only_misclassified_images(tmp_path, drawn):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 1, 28, 28, generator=generator)
    labels = torch.arange(40) % 10
    probs = torch.nn.functional.one_hot(labels, 10).float()  # all right ...
    wrong = {3: (7, 0.51), 17: (2, 0.93), 25: (0, 0.70), 30: (9, 0.88), 31: (4, 0.60), 36: (1, 0.55), 39: (8, 0.99)}
    for i, (predicted, p) in wrong.items():  # ... except these
        probs[i] = (1 - p) / 9
        probs[i, predicted] = p
    plots.plot_mistakes(images, labels, probs, NAMES, tmp_path / "mistakes.png")

    order = sorted(wrong, key=lambda i: -wrong[i][1])
    expected = [f"{NAMES[int(labels[i])]} / {NAMES[wrong[i][0]]} ({wrong[i][1]:.2f})" for i in order]
    (grid,) = drawn[0].axes  # one image for the whole grid
    tiles = labelled_tiles(grid)
    assert [label for label, _ in tiles] == expected
    for (_, pixels), i in zip(tiles, order, strict=True):
        np.testing.assert_array_equal(pixels, images[i, 0].double().numpy())
    width, height = png_size(tmp_path / "mistakes.png")
    assert width > 5 * height / 2 * 0.8  # 7 images: one row of 6 and one of 1
    assert drawn[0].texts[0].get_text().startswith("Misclassified: true / predicted")


def test_mistakes_grid_keeps_n_and_says_when_there_are_none(tmp_path, drawn):
    labels = torch.zeros(30, dtype=torch.int64)
    probs = torch.full((30, 10), 0.02)
    probs[:, 3] = 0.82
    plots.plot_mistakes(torch.rand(30, 1, 28, 28), labels, probs, NAMES, tmp_path / "some.png", n=12)
    assert len(labelled_tiles(drawn[0].axes[0])) == 12
    plots.plot_mistakes(torch.rand(30, 1, 28, 28), labels, torch.eye(10)[labels], NAMES, tmp_path / "none.png")
    assert png_size(tmp_path / "none.png")
    assert "No misclassified images." in [t.get_text() for t in drawn[1].texts]


def test_longest_mistake_labels_neither_overlap_nor_leave_the_figure(tmp_path, drawn):
    labels = torch.tensor([9, 2] * 12)  # "ankle boot / pullover (1.00)" and "pullover / ankle boot (1.00)"
    probs = torch.zeros(24, 10)
    probs[torch.arange(24), 11 - labels] = 1.0
    plots.plot_mistakes(torch.rand(24, 1, 28, 28), labels, probs, NAMES, tmp_path / "mistakes.png")
    renderer = FigureCanvasAgg(drawn[0]).get_renderer()
    boxes = [text.get_window_extent(renderer) for text in drawn[0].axes[0].texts]
    assert len(boxes) == 24
    assert all(box.x0 >= 0 and box.x1 <= drawn[0].bbox.x1 and box.y1 <= drawn[0].bbox.y1 for box in boxes)
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))


@pytest.mark.parametrize("n", [1, 40, pytest.param(400, marks=pytest.mark.slow)])  # 400: seconds to draw
def test_a_grid_costs_the_same_few_artists_however_many_images(tmp_path, drawn, n):
    plots.plot_tiles(torch.rand(n, 1, 28, 28), [str(i) for i in range(n)], tmp_path / "grid.png", 9, 1.2)
    assert len(drawn[0].axes) == 1 and len(drawn[0].axes[0].images) == 1 and len(drawn[0].axes[0].texts) == n
    width, height = png_size(tmp_path / "grid.png")
    assert width == round(drawn[0].get_figwidth() * plots.DPI)


def prediction_rows(fig, n: int, names=NAMES) -> list[dict]:
    """What plots.plot_predictions drew for each of n rows: picture, evidence map (if any), bar widths and
    colours, the class names written beside the bars, the row's title."""
    *pictures, bars = fig.axes
    side = 28
    gap = round(side * (plots.ROW_INCHES / plots.PICTURE_INCHES - 1))
    c = len(names)
    rows = []
    for i in range(n):
        y = i * (side + gap)
        row = {"pictures": [np.ma.filled(ax.images[0].get_array()[y : y + side], np.nan) for ax in pictures]}
        patches = bars.patches[i * c : (i + 1) * c]
        row["probs"] = [bar.get_width() for bar in patches]
        row["highlighted"] = [k for k, bar in enumerate(patches) if bar.get_facecolor() == to_rgba(plots.HIGHLIGHT)]
        texts = [t for t in bars.texts if i * (c + 2) <= t.get_position()[1] < (i + 1) * (c + 2)]
        row["title"] = texts[0].get_text()
        row["names"] = [t.get_text() for t in texts[1 : c + 1]]
        row["bold"] = [t.get_text() for t in texts[1 : c + 1] if t.get_fontweight() == "bold"]
        rows.append(row)
    return rows


def test_predictions_have_one_row_per_image_with_the_top_class_highlighted(tmp_path, drawn):
    images = torch.rand(3, 1, 28, 28)
    probs = torch.softmax(torch.randn(3, 10, generator=torch.Generator().manual_seed(1)) * 3, dim=1)
    titles = ["shoe.jpg", "true: bag", "a-very-long-name-" * 6 + ".png"]
    plots.plot_predictions(images, probs, NAMES, tmp_path / "three.png", titles)
    plots.plot_predictions(images[:1], probs[:1], NAMES, tmp_path / "one.png", titles[:1])
    (w3, h3), (w1, h1) = png_size(tmp_path / "three.png"), png_size(tmp_path / "one.png")
    assert w3 == w1 and h3 - h1 == round(2 * plots.ROW_INCHES * plots.DPI)  # a row more, a row's height more

    assert len(drawn[0].axes) == 2  # one column of pictures, one of bars, for every row
    for i, row in enumerate(prediction_rows(drawn[0], 3)):
        np.testing.assert_array_equal(row["pictures"][0], images[i, 0].double().numpy())
        assert row["probs"] == pytest.approx(probs[i].tolist())
        top = int(probs[i].argmax())
        assert row["highlighted"] == [top] and row["bold"] == [NAMES[top]] and row["names"] == NAMES
    assert [row["title"] for row in prediction_rows(drawn[0], 3)[:2]] == titles[:2]
    long = prediction_rows(drawn[0], 3)[2]["title"]
    assert len(long) <= 60 and long.endswith(".png")


@pytest.mark.slow
def test_predictions_cost_the_same_few_axes_however_many_rows(tmp_path, drawn):
    for n in (1, 100):
        plots.plot_predictions(torch.rand(n, 1, 28, 28), torch.softmax(torch.randn(n, 10), 1), NAMES,
                               tmp_path / f"{n}.png", [str(i) for i in range(n)], torch.randn(n, 28, 28))  # fmt: skip
    assert len(drawn[0].axes) == len(drawn[1].axes) == 3
    assert len(drawn[1].axes[2].patches) == 100 * 10
