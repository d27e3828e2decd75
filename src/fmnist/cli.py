"""The `fmnist` command: parses arguments, then calls the library.

PyTorch is imported only once a command runs, so `--help` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import fields
from pathlib import Path

from .recipes import MODELS, RECIPES, recipe_settings

DEVICES = ("auto", "cpu", "cuda")
MAX_PICTURES = 400  # images in one picture of show or predict --plot: beyond that it is too large to draw


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of the usage block."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _positive(kind: type) -> object:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = _non_negative(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}")
    return int(value)


def _fraction(text: str) -> float:
    value = _non_negative(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be less than 1, got {text}")
    return value


def _at_most(limit: int) -> object:
    def parse(text: str) -> int:
        value = _positive(int)(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit}, got {text}")
        return value

    return parse


def _seed(text: str) -> int:
    value = _non_negative_int(text)
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"must be below 2**63, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog="fmnist", description="Train, evaluate and explain softmax regression on Fashion-MNIST."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_dir = _Parser(add_help=False)
    data_dir.add_argument("--data-dir", metavar="DIR", help="folder with the four .gz files (default: $FMNIST_DATA, "
                          "the user cache, /usr/share/datasets/fashion-mnist; downloaded when absent)")  # fmt: skip

    p = commands.add_parser("download", parents=[data_dir], help="make the dataset available and verified")
    p.add_argument("--force", action="store_true", help="download again even if verified files exist")
    p.set_defaults(run=cmd_download)

    # Settings default to None so that --resume can tell the ones given from the run's own;
    # the defaults come from the recipe (fmnist.recipes) over train.Config's, the seed's recipe.
    p = commands.add_parser("train", parents=[data_dir], help="train a model and write a run directory",
                            description="Train a model. Settings not given come from the model's recipe: "
                            + "; ".join(f"{m}: {', '.join(r)}" for m, r in RECIPES.items())
                            + " (the first is the default).")  # fmt: skip
    p.add_argument("--model", choices=MODELS, help="model to train (default: softmax)")
    p.add_argument("--recipe", choices=sorted({r for rs in RECIPES.values() for r in rs}),
                   help="named settings for the model (default: its first recipe; softmax: seed)")  # fmt: skip
    p.add_argument("--epochs", type=_positive(int), help="passes over the training set (seed recipe: 10)")
    p.add_argument("--batch-size", type=_positive(int), help="examples per step (seed recipe: 256)")
    p.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), help="seed recipe: sgd")
    p.add_argument("--lr", type=_positive(float), help="learning rate (seed recipe: 0.1)")
    p.add_argument("--weight-decay", type=_non_negative,
                   help="weight decay: decoupled for adam (AdamW), an L2 term for sgd and momentum (seed: 0)")
    p.add_argument("--schedule", choices=("constant", "cosine"), help="learning rate per epoch (seed: constant)")
    p.add_argument("--label-smoothing", type=_fraction, help="from 0 to 1 (seed recipe: 0)")
    p.add_argument("--normalize", choices=("none", "pixel", "global"),
                   help="standardise the input with the training split's mean and std (seed recipe: none)")
    p.add_argument("--dropout", type=_fraction, help="dropout before the last layer of mlp and cnn, 0 to 1")
    p.add_argument("--augment", choices=("none", "shift"), help="shift: move training images up to 2 pixels")
    p.add_argument("--val-size", type=_non_negative_int,
                   help="hold out this many training images, chosen by --seed, as a validation set (default: 0)")
    p.add_argument("--impl", choices=("concise", "scratch"),
                   help="scratch: hand-derived gradients of fmnist.scratch, softmax with SGD only (default: concise)")
    p.add_argument("--seed", type=_seed, help="seed for initialisation and shuffling (default: 0)")
    p.add_argument("--device", choices=DEVICES, help="where to train (default: auto, a GPU when there is one)")
    p.add_argument("--threads", type=_positive(int),
                   help="CPU threads for PyTorch (default: 1, the fastest for this small model)")  # fmt: skip
    p.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<date>-<time>)")
    p.add_argument("--quiet", action="store_true", help="print only the final line (no progress, no epoch lines)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last finished epoch (only --epochs may change)")
    again.add_argument("--force", action="store_true", help="start over in an existing run directory")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("eval", parents=[data_dir], help="score a run's model on the test set")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory written by `fmnist train`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser("predict", parents=[data_dir], help="classify your own pictures with a run's model")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory written by `fmnist train`")
    p.add_argument("images", type=Path, nargs="*", metavar="IMAGE",
                   help="PNG, JPEG or any picture Pillow reads; colour or grey, any size, either polarity")
    p.add_argument("--top", type=_at_most(10), default=3, help="how many classes to list, 1-10 (default: 3)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input in order")
    p.add_argument("--plot", type=Path, metavar="FILE", help="also draw each input beside its probabilities")
    p.add_argument("--test-index", type=_non_negative_int, nargs="+", default=[], metavar="I",
                   help="also predict these items of the test set, with their true labels")
    p.add_argument("--explain", action="store_true",
                   help="softmax regression: draw beside each picture its evidence map, pixel times weight for the "
                   "top class, into the --plot picture (default: predictions.png)")  # fmt: skip
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("compare", parents=[data_dir], help="compare finished runs, of any models",
                            description="Compare runs: one table (best of each column marked with *), the "
                            "test accuracy of each class side by side, and with --out every run's curves "
                            "overlaid.")  # fmt: skip
    p.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="two or more run directories")
    p.add_argument("--out", type=Path, metavar="DIR", help="write compare.png and compare.html into DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(run=cmd_compare)

    p = commands.add_parser("show", parents=[data_dir], help="draw dataset images with their labels as a PNG")
    p.add_argument("--n", type=_at_most(MAX_PICTURES), default=18, help="how many images (default: 18)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="default: train")
    p.add_argument("--out", type=Path, metavar="FILE", help="default: fashion-mnist-SPLIT.png")
    p.set_defaults(run=cmd_show)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def cmd_download(args: argparse.Namespace) -> int:
    from . import data

    if args.force or args.data_dir:  # fetch what is missing or damaged there (everything with --force)
        folder = data.download(data.search_dirs(args.data_dir)[0], force=args.force)
    else:  # the first folder that has the files, else a download into the cache
        folder = data.locate()
    data.load(folder)  # verifies; a damaged file's message names `download --force`
    print(f"Fashion-MNIST is ready in {folder} (4 files, content verified by SHA-256)")
    return 0


def _fail(message: str, code: int = 1) -> int:
    print(f"fmnist: {'error: ' if code != 130 else ''}{message}", file=sys.stderr)
    return code


def cmd_train(args: argparse.Namespace) -> int:
    from . import checkpoint
    from .train import CHECKPOINT, Config, Interrupted, train

    if args.resume and args.out is None:
        return _fail("--resume needs --out with the run directory to continue.", 2)
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if (out / CHECKPOINT).exists() and not (args.force or args.resume):
        return _fail(f"{out} already holds a run; pass --resume to continue it, --force to start over, "
                     "or choose another --out.", 2)  # fmt: skip
    given = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name, None) is not None}
    if args.resume:  # the run's own settings, where none are given
        saved = checkpoint.read_json(out / "config.json")
        base = {f.name: saved[f.name] for f in fields(Config) if f.name in saved}
    else:
        try:
            base = recipe_settings(given.get("model", "softmax"), given.get("recipe"))
        except ValueError as e:
            return _fail(f"{e}.", 2)
    config = Config(**{**base, **given})
    log = (lambda line: None) if args.quiet else print
    log(f"training {config.model} ({config.recipe} recipe) for {config.epochs} epochs into {out}")
    try:
        summary = train(config, out, data_dir=args.data_dir, resume=args.resume, log=log,
                        progress=False if args.quiet else None)  # fmt: skip
    except Interrupted as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this message short
        if not stop.epochs_done:
            return _fail(f"{stop}; no epoch had finished, so start again with the same command.", 130)
        data_dir = f" --data-dir {args.data_dir}" if args.data_dir else ""
        return _fail(f"{stop}. Continue with: fmnist train --out {out} --resume{data_dir}", 130)
    print(
        f"done in {summary['seconds']:.1f} s: test accuracy {summary['test_acc']:.4f}, "
        f"train accuracy {summary['train_acc']:.4f}; run directory {out} (open {out / 'report.html'})"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from . import checkpoint, data, evaluate

    net, config = checkpoint.load_model(args.run_dir)
    rows = checkpoint.read_metrics(args.run_dir / "metrics.csv")
    if not rows:
        return _fail(f"{args.run_dir} has no finished epoch yet; train it first.")
    summary = checkpoint.summarize(rows)  # as summary.json has it, also for a run that was interrupted
    dataset = data.load(args.data_dir)
    scores = evaluate.evaluate_run(args.run_dir, net, config, dataset, rows, summary)
    result = {"run_dir": str(args.run_dir), "model": config["model"], **scores}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    images = sum(row["support"] for row in result["per_class"])
    print(f"{args.run_dir}: {config['model']}, test accuracy {result['test_acc']:.4f} on {images} images")
    print(f"\n{'class':<12}{'images':>8}{'precision':>11}{'recall':>8}")
    for row in result["per_class"]:
        print(f"{row['label']:<12}{row['support']:>8}{row['precision']:>11.3f}{row['recall']:>8.3f}")
    print("(recall is the class's accuracy: the fraction of its images classified correctly)")
    print("\nmost confused (true -> predicted: images)")
    for pair in result["most_confused"]:
        print(f"  {pair['true']} -> {pair['predicted']}: {pair['count']}")
    print(f"\npictures and report.html written to {args.run_dir}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from . import checkpoint, data, images, model, plots

    if not args.images and not args.test_index:
        return _fail("give one or more image files, or --test-index.", 2)
    if args.explain and not args.plot:
        args.plot = Path("predictions.png")
    if args.plot and len(args.images) + len(args.test_index) > MAX_PICTURES:
        return _fail(f"--plot draws at most {MAX_PICTURES} images; give fewer, or leave out --plot.", 2)
    net, config = checkpoint.load_model(args.run_dir)
    if args.explain and config["model"] != "softmax":
        return _fail(f"--explain works for softmax regression only, and {args.run_dir} holds model "
                     f"{config['model']!r}, whose decision is not a sum of pixel times weight; leave out --explain.",
                     2)  # fmt: skip
    names = list(data.LABELS)
    inputs: list[tuple[str, torch.Tensor | str, str | None]] = []  # (name, image or error, true label)
    for path in args.images:
        try:
            inputs.append((str(path), images.load_image(path), None))
        except images.ImageError as e:
            inputs.append((str(path), str(e), None))
    if args.test_index:
        dataset = data.load(args.data_dir)
        for i in args.test_index:
            if not 0 <= i < len(dataset.test_labels):
                return _fail(f"--test-index {i} is outside the test set (0 to {len(dataset.test_labels) - 1}).", 2)
            inputs.append((f"test[{i}]", dataset.test_images[i], names[int(dataset.test_labels[i])]))
    good = [x for _, x, _ in inputs if isinstance(x, torch.Tensor)]
    with torch.no_grad():
        probs = iter(torch.softmax(net(torch.stack(good)), dim=1) if good else [])
    results, shown, pictures = [], [], []
    for name, x, true in inputs:
        if not isinstance(x, torch.Tensor):
            results.append({"path": name, "error": x})
            continue
        p = next(probs)
        results.append({"path": name, **({"true": true} if true else {}), "top": images.top_k(p, names, args.top)})
        shown.append(p)
        pictures.append((x, f"{name}" + (f" (true: {true})" if true else "")))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            answer = r.get("error") or ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"])
            print(f"{r['path']}: {answer}" + (f"  (true: {r['true']})" if "true" in r else ""))
    if args.plot and pictures:
        X, P = torch.stack([x for x, _ in pictures]), torch.stack(shown)
        evidence = model.evidence(net, X, P.argmax(dim=1)) if args.explain else None
        plots.plot_predictions(X, P, names, args.plot, [title for _, title in pictures], evidence)
        print(f"picture written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    failed = [r for r in results if "error" in r]
    for r in failed if args.json else []:
        print(f"fmnist: error: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from . import compare, data

    if len(args.runs) < 2:
        return _fail("compare needs two or more run directories.", 2)
    dataset = data.load(args.data_dir)
    runs, failed = [], []
    for run_dir in args.runs:
        try:
            runs.append(compare.load_run(run_dir, dataset))
        except compare.RunError as e:
            failed.append({"run": str(run_dir), "error": str(e)})
            print(f"fmnist: error: {e}", file=sys.stderr)
    if len(runs) < 2:
        return _fail(f"only {len(runs)} of the {len(args.runs)} runs can be compared, and it takes two.")
    result = compare.compare(runs, failed)
    print(json.dumps(result, indent=2) if args.json else compare.format_text(result))
    if args.out:
        written = compare.write(args.out, result, runs)
        print(f"written: {', '.join(map(str, written))}", file=sys.stderr if args.json else sys.stdout)
    return 1 if failed else 0


def cmd_show(args: argparse.Namespace) -> int:
    from . import data, plots

    dataset = data.load(args.data_dir)
    X, y = (dataset.train_images, dataset.train_labels) if args.split == "train" else (
        dataset.test_images, dataset.test_labels)  # fmt: skip
    n = min(args.n, len(y))
    columns = min(n, 9)
    fig, _ = plots.image_grid(X[:n], -(-n // columns), columns, data.text_labels(y[:n]))
    out = args.out or Path(f"fashion-mnist-{args.split}.png")
    plots.save_figure(fig, out)
    print(f"the first {n} {args.split} images with their labels: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (1 for a user error, 130 when interrupted)."""
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .data import DataError
    from .train import TrainingError

    try:
        return args.run(args)
    except (DataError, CheckpointError, TrainingError) as e:
        return _fail(str(e))
    except OSError as e:  # the file system said no: a full disk, a read-only folder, a missing parent folder
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}; check the path and the free space.")
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return _fail("interrupted", 130)
