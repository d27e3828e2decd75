"""The d2l.ai book's pictures, both editions: set_figsize, set_axes, plot, show_images, Animator.

Pictures are pyplot figures, as in the book. Inside Jupyter (an IPython kernel) they show
inline and an Animator (d2l 1.x: a ProgressBoard, fmnist.d2l.en) is redrawn after every
point. Anywhere else (a script, an IDE, a headless machine) nothing waits for a window: the
functions that finish a picture (plot, show_images, fmnist.d2l.zh's train_ch3, train_ch6 and
predict_ch3, fmnist.d2l.en's Trainer.fit) also save it as
``fmnist-<function>.png`` in the current directory (the temporary directory when that is
not writable; ``-2``, ``-3``... for later figures of the same function in one process) and
print the path. Figures the caller may still draw on (show_images' axes, an Animator) stay
open, as pyplot's own do; the others are closed once saved, so a script that trains many
times does not pile up open figures.

Image grids are drawn by fmnist.plots.image_grid, on the pyplot figure made here: grey
images in grey (the book's imshow shows them in a false-colour map), colour ones in colour.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import plots
from ..fileio import PathError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Images = torch.Tensor | np.ndarray | Sequence[Any]


def in_notebook() -> bool:
    """True inside an IPython kernel (Jupyter, Colab), where pyplot figures show inline."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it; never import it here
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def use_svg_display() -> None:
    """Draw inline figures as SVG, as the book does, inside Jupyter; does nothing anywhere else."""
    if not in_notebook():
        return
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    set_matplotlib_formats("svg")


def set_figsize(figsize: tuple[float, float] = (3.5, 2.5)) -> None:
    """Default size of new pyplot figures, in inches."""
    from matplotlib import pyplot

    use_svg_display()
    pyplot.rcParams["figure.figsize"] = figsize


def set_axes(
    axes: Axes,
    xlabel: str | None,
    ylabel: str | None,
    xlim: Sequence[float] | None,
    ylim: Sequence[float] | None,
    xscale: str,
    yscale: str,
    legend: Sequence[str] | None,
) -> None:
    """Labels, limits, scales, legend and grid of a matplotlib Axes, as the book's set_axes."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xscale(xscale)
    axes.set_yscale(yscale)
    axes.set_xlim(xlim)
    axes.set_ylim(ylim)
    if legend:
        axes.legend(legend)
    axes.grid()


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A pyplot figure (inline in Jupyter, shown by plt.show()); off-screen when no GUI can start."""
    from matplotlib.figure import Figure

    try:
        from matplotlib import pyplot

        return pyplot.figure(figsize=figsize)
    except Exception:  # e.g. MPLBACKEND=TkAgg without a display: still draw, into the PNG only
        return Figure(figsize=figsize)


_saved: dict[str, int] = {}


def publish(fig: Figure, name: str, close: bool) -> Path | None:
    """Outside Jupyter, save fig as fmnist-<name>.png (in the current or the temporary directory),
    print where, and with close take it off pyplot's list of open figures; returns the path.
    In Jupyter, where the figure shows inline when the cell ends, it does nothing (None)."""
    if in_notebook():
        return None
    count = _saved[name] = _saved.get(name, 0) + 1
    filename = f"fmnist-{name}.png" if count == 1 else f"fmnist-{name}-{count}.png"
    saved = None
    for folder in (Path("."), Path(tempfile.gettempdir())):
        path = (folder / filename).absolute()
        try:
            plots.save_figure(fig, path, tight=True)
        except (OSError, PathError):
            continue
        print(f"{name}: figure saved to {path}", flush=True)
        saved = path
        break
    else:
        print(f"{name}: could not save the figure (neither the current nor the temporary directory is writable)")
    if close and fig.canvas.manager is not None:  # only pyplot's figures have a manager
        from matplotlib import pyplot

        pyplot.close(fig)
    return saved


def _as_images(imgs: Images) -> torch.Tensor | np.ndarray:
    """imgs as one array of images; a lone colour image [H, W, 3] is refused (it would draw as H strips)."""
    if isinstance(imgs, torch.Tensor | np.ndarray):
        if imgs.ndim == 3 and imgs.shape[-1] in (3, 4):
            raise ValueError(f"show_images got one array of shape {tuple(imgs.shape)}, which looks like a single "
                             "colour image; pass a list of images ([img]) or a batch [N, H, W, 3]")  # fmt: skip
        return imgs
    return torch.stack([img.detach().cpu() if isinstance(img, torch.Tensor) else torch.from_numpy(np.array(img))
                        for img in imgs])  # fmt: skip


def image_figure(
    imgs: Images, num_rows: int, num_cols: int, titles: Sequence[str] | None, scale: float
) -> tuple[Figure, np.ndarray]:
    """A pyplot figure with imgs in a grid (see show_images); the figure and the flat array of its Axes."""
    fig = new_figure((num_cols * scale, num_rows * scale))
    return plots.image_grid(fig, _as_images(imgs), num_rows, num_cols, titles)


def show_images(
    imgs: Images,
    num_rows: int,
    num_cols: int,
    titles: Sequence[str] | None = None,
    scale: float = 1.5,
) -> np.ndarray:
    """Images in a grid; returns the flat array of Axes. Each cell is scale inches square.

    imgs: grey [N, H, W] or [N, 1, H, W], colour [N, H, W, 3] (floats in [0, 1] or uint8), or a
    list of such images ([H, W] or [H, W, 3] arrays, tensors or PIL images). Outside Jupyter the
    figure is also saved as fmnist-show_images.png, whose path is printed; it stays open.
    """
    fig, axes = image_figure(imgs, num_rows, num_cols, titles, scale)
    publish(fig, "show_images", close=False)
    return axes


def _series(values: Any) -> list:
    """A list of data series from one series (a 1-D tensor or array, or a list of numbers) or several."""
    one = getattr(values, "ndim", None) == 1 or (isinstance(values, list) and not hasattr(values[0], "__len__"))
    return [values] if one else list(values)


def lazy_plt(module: str, name: str) -> object:
    """The module __getattr__ of the book's namespaces: `d2l.plt` is matplotlib.pyplot, imported on first
    use (importing fmnist.d2l does not load pyplot); any other missing name is module's AttributeError."""
    if name == "plt":
        from matplotlib import pyplot

        return pyplot
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def _plottable(values: Any) -> Any:
    """Tensors as numpy arrays (detached, on the CPU), so that tensors that need gradients plot too."""
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values


def plot(
    X: Any,
    Y: Any = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    legend: Sequence[str] | None = None,
    xlim: Sequence[float] | None = None,
    ylim: Sequence[float] | None = None,
    xscale: str = "linear",
    yscale: str = "linear",
    fmts: Sequence[str] = ("-", "m--", "g-.", "r:"),
    figsize: tuple[float, float] = (3.5, 2.5),
    axes: Axes | None = None,
) -> None:
    """The book's plot: each series of Y against X, with fmts in turn, on axes.

    X and Y: one series (a 1-D tensor or array, or a list of numbers) or a list of series; one
    X series serves every Y series; with Y None, X's series are drawn against their index.
    Without axes: in Jupyter the current pyplot Axes, as the book's; elsewhere a new figure,
    saved as fmnist-plot.png (path printed) and closed.
    """
    set_figsize(figsize)
    xs = _series(X)
    if Y is None:
        xs, ys = [None] * len(xs), xs
    else:
        ys = _series(Y)
    if len(xs) != len(ys):
        xs = xs * len(ys)
    fig = None
    if axes is None:
        from matplotlib import pyplot

        if in_notebook():
            axes = pyplot.gca()
        else:
            fig = new_figure(figsize)
            axes = fig.gca()
    axes.cla()
    for x, y, fmt in zip(xs, ys, fmts, strict=False):
        if x is None:
            axes.plot(_plottable(y), fmt)
        else:
            axes.plot(_plottable(x), _plottable(y), fmt)
    set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, [] if legend is None else legend)
    if fig is not None:
        publish(fig, "plot", close=True)


class Animator:
    """The book's live plot: add(x, y) appends points to one line per y value and redraws.

    In Jupyter the figure is displayed again after every add(); elsewhere it is only redrawn
    (train_ch3 and train_ch6 save theirs at the end). self.fig is the figure, self.axes its
    Axes, self.X and self.Y the points so far, one list per line.
    """

    def __init__(
        self,
        xlabel: str | None = None,
        ylabel: str | None = None,
        legend: Sequence[str] | None = None,
        xlim: Sequence[float] | None = None,
        ylim: Sequence[float] | None = None,
        xscale: str = "linear",
        yscale: str = "linear",
        fmts: Sequence[str] = ("-", "m--", "g-.", "r:"),
        nrows: int = 1,
        ncols: int = 1,
        figsize: tuple[float, float] = (3.5, 2.5),
    ) -> None:
        legend = [] if legend is None else legend
        use_svg_display()
        self.fig = new_figure(figsize)
        self.axes = self.fig.subplots(nrows, ncols, squeeze=False).flatten()
        self.config_axes = lambda: set_axes(self.axes[0], xlabel, ylabel, xlim, ylim, xscale, yscale, legend)
        self.X: list[list[float]] | None = None
        self.Y: list[list[float]] | None = None
        self.fmts = fmts

    def add(self, x: float | Sequence[float], y: float | Sequence[float]) -> None:
        """Append one point per line: y a number or one value per line (None: no point), x shared or one per line."""
        if not hasattr(y, "__len__"):
            y = [y]
        n = len(y)
        if not hasattr(x, "__len__"):
            x = [x] * n
        if not self.X:
            self.X = [[] for _ in range(n)]
        if not self.Y:
            self.Y = [[] for _ in range(n)]
        for i, (a, b) in enumerate(zip(x, y, strict=False)):
            if a is not None and b is not None:
                self.X[i].append(a)
                self.Y[i].append(b)
        self.axes[0].cla()
        for xs, ys, fmt in zip(self.X, self.Y, self.fmts, strict=False):
            self.axes[0].plot(xs, ys, fmt)
        self.config_axes()
        if in_notebook():
            from IPython import display

            display.display(self.fig)
            display.clear_output(wait=True)
