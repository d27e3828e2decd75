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
    p.add_argument("--weight-decay", type=_non_negative, help="decoupled weight decay (seed recipe: 0)")
    p.add_argument("--schedule", choices=("constant", "cosine"), help="learning rate per epoch (seed: constant)")
    p.add_argument("--label-smoothing", type=_non_negative, help="seed recipe: 0")
    p.add_argument("--normalize", choices=("none", "pixel", "global"),
                   help="standardise the input with the training split's mean and std (seed recipe: none)")
    p.add_argument("--dropout", type=_non_negative, help="dropout before the last layer of mlp and cnn")
    p.add_argument("--augment", choices=("none", "shift"), help="shift: move training images up to 2 pixels")
    p.add_argument("--val-size", type=_non_negative_int,
                   help="hold out this many training images, chosen by --seed, as a validation set (default: 0)")
    p.add_argument("--seed", type=int, help="seed for initialisation and shuffling (default: 0)")
    p.add_argument("--device", choices=DEVICES, help="where to train (default: auto, a GPU when there is one)")
    p.add_argument("--threads", type=_positive(int),
                   help="CPU threads for PyTorch (default: 1, the fastest for this small model)")  # fmt: skip
    p.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<date>-<time>)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last finished epoch (only --epochs may change)")
    again.add_argument("--force", action="store_true", help="start over in an existing run directory")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("eval", parents=[data_dir], help="score a run's model on the test set")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory written by `fmnist train`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(run=cmd_eval)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def cmd_download(args: argparse.Namespace) -> int:
    from . import data

    dirs = data.search_dirs(args.data_dir)
    found = next((d for d in dirs if data.has_all_files(d)), None)
    if found is not None and not args.force and not args.data_dir:
        data.load(found)  # verifies; a damaged file names `download --force`, which refetches into dirs[0]
        folder = found
    else:
        folder = data.download(dirs[0], force=args.force)
    print(f"Fashion-MNIST is ready in {folder} (4 files, content verified by SHA-256)")
    return 0


def _fail(message: str, code: int = 1) -> int:
    print(f"fmnist: {'error: ' if code != 130 else ''}{message}", file=sys.stderr)
    return code


def cmd_train(args: argparse.Namespace) -> int:
    from . import checkpoint
    from .train import Config, Interrupted, train

    if args.resume and args.out is None:
        return _fail("--resume needs --out with the run directory to continue.", 2)
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if (out / "config.json").exists() and not (args.force or args.resume):
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
    print(f"training {config.model} for {config.epochs} epochs into {out}")
    try:
        summary = train(config, out, data_dir=args.data_dir, resume=args.resume)
    except Interrupted as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this message short
        return _fail(f"interrupted; {out} keeps {stop.epochs_done} finished epoch(s). "
                     f"Continue with: fmnist train --out {out} --resume", 130)  # fmt: skip
    print(
        f"done in {summary['seconds']:.1f} s: test accuracy {summary['test_acc']:.4f}, "
        f"train accuracy {summary['train_acc']:.4f}; run directory {out}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from . import checkpoint, data, metrics, train

    net, config = checkpoint.load_model(args.run_dir)
    dataset = data.load(args.data_dir)
    batches = data.Batches(dataset.test_images, dataset.test_labels, train.EVAL_BATCH_SIZE)
    confusion = metrics.evaluate(net, batches)
    result = {
        "run_dir": str(args.run_dir),
        "model": config["model"],
        "test_acc": metrics.accuracy(confusion),
        "per_class": metrics.per_class(confusion, list(data.LABELS)),
        "most_confused": metrics.most_confused(confusion, list(data.LABELS)),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.run_dir}: {config['model']}, test accuracy {result['test_acc']:.4f} on {int(confusion.sum())} images")
    print(f"\n{'class':<12}{'images':>8}{'precision':>11}{'recall':>8}")
    for row in result["per_class"]:
        print(f"{row['label']:<12}{row['support']:>8}{row['precision']:>11.3f}{row['recall']:>8.3f}")
    print("(recall is the class's accuracy: the fraction of its images classified correctly)")
    print("\nmost confused (true -> predicted: images)")
    for pair in result["most_confused"]:
        print(f"  {pair['true']} -> {pair['predicted']}: {pair['count']}")
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
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return _fail("interrupted", 130)
