"""The `fmnist` command: parses arguments, then calls the library.

PyTorch is imported only once a command runs, so `--help` and argument errors answer at once.
"""

from __future__ import annotations

import os
import signal

from .errors import STOP_SIGNALS, Stopped, UserError


def _on_stop(signum: int, frame: object) -> None:
    """Ctrl-C, SIGTERM and SIGHUP raise errors.Stopped, a KeyboardInterrupt, which each command answers with
    the way to go on (main, cmd_train). The heavy imports (PyTorch, matplotlib) hold them back until they end
    (fileio.uninterrupted): a library stopped in the middle of its import may swallow the stop or be left
    half-imported."""
    raise Stopped(signum)


for _signum, _default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                          (signal.SIGHUP, signal.SIG_DFL)):  # fmt: skip
    if signal.getsignal(_signum) is _default:  # not where the shell or nohup made us ignore it
        signal.signal(_signum, _on_stop)

import argparse  # noqa: E402  (after the handler: an import takes long enough to be interrupted)
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, fields  # noqa: E402
from pathlib import Path  # noqa: E402

from . import recipefile, searchspace  # noqa: E402
from .errors import command  # noqa: E402
from .fileio import uninterrupted  # noqa: E402
from .recipes import RECIPES, recipe_settings  # noqa: E402
from .settings import NAMES, SETTINGS, Config, Range, Setting, SettingError, bounds_here, option  # noqa: E402

TUNE_VAL_SIZE = 10_000  # fmnist tune's validation split, in training images
MAX_PICTURES = 400  # images in one picture of show: 45 rows of 9, about a second to draw
MAX_PLOTTED = 100  # rows of predict --plot, each 1.7 inches tall: about two seconds to draw, a 17,000-pixel picture
PICTURE_FORMATS = (".png", ".jpg", ".jpeg", ".pdf", ".svg")  # what --out and --plot may name; matplotlib writes each


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of the usage block."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _number(bounds: Range) -> object:
    """An argparse type: a number within bounds (fmnist.settings.Range), checked before any work."""

    def parse(text: str) -> int | float:
        try:
            return bounds.parse(text)
        except SettingError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = bounds.kind.__name__
    return parse


def _add_setting(parser: argparse.ArgumentParser, name: str, declared: Setting) -> None:
    """The option --NAME of the training setting name, from its declaration: its check (a number within
    its bounds, threads within this machine's cores, one of its choices, or for --recipe a recipe file) and its
    help with the seed recipe's default. It defaults to None, so that --resume can tell the settings given from
    the run's own."""
    if name == "recipe":
        parser.add_argument("--recipe", type=_recipe, metavar="NAME|FILE", help=_recipe_help(declared))
        return
    bounds = bounds_here(name)
    kind = _number(bounds) if bounds else None
    parser.add_argument(option(name), choices=declared.choices or None, metavar=None if
                        declared.choices else ("N|auto" if declared.auto else "N"),
                        type=(lambda text: "auto" if text == "auto" else kind(text)) if declared.auto else kind,
                        help=f"{declared.help}{f'; {bounds.describe()}' if bounds else ''} (default: {_default(name)})")


def _default(name: str) -> object:
    return next(f.default for f in fields(Config) if f.name == name)


def _recipe(text: str) -> str | Path:
    """An argparse type: a named recipe, or the path of a recipe file (fmnist.recipefile) for a name ending in
    .json or .toml."""
    if recipefile.is_recipe_file(text):
        return Path(text)
    if text not in SETTINGS["recipe"].choices:
        raise argparse.ArgumentTypeError(f"{text!r:.40} is neither a recipe ({', '.join(SETTINGS['recipe'].choices)})"
                                         " nor a file of settings ending in .json or .toml")  # fmt: skip
    return text


def _recipe_help(declared: Setting) -> str:
    return (f"{declared.help}; or a JSON or TOML file of settings (such as fmnist tune's recipe.json) over the "
            "model's recipe")  # fmt: skip


def _add_search(parser: argparse.ArgumentParser, name: str, declared: Setting) -> None:
    """fmnist tune's option --NAME for the training setting name: one value (fixed), or, unless the setting
    must stay fixed, a list to try or a range of numbers (fmnist.searchspace)."""
    if name == "recipe":
        parser.add_argument("--recipe", type=_recipe, metavar="NAME|FILE", help=f"{_recipe_help(declared)}: the "
                            "settings a trial does not search (default: the model's first)")  # fmt: skip
        return

    def parse(text: str) -> object:
        try:
            return searchspace.parse(name, text)
        except SettingError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = "value"
    bounds = bounds_here(name)
    if name in searchspace.FIXED_ONLY:
        tried = f"one value, not searched: {searchspace.FIXED_ONLY[name]}"
    else:
        tried = "one value, a list a,b,c to try" + (", or a range LOW:HIGH or LOW:HIGH:log" if bounds else "")
    default = TUNE_VAL_SIZE if name == "val_size" else _default(name)
    allowed = bounds.describe() if bounds else ", ".join(declared.choices)
    parser.add_argument(option(name), type=parse, metavar="VALUES", default=TUNE_VAL_SIZE if
                        name == "val_size" else None, help=f"{declared.help}; {tried}; {allowed} (default: {default})")


def _picture_path(text: str) -> Path:
    """An argparse type: a picture file to write, named with a format matplotlib writes."""
    path = Path(text)
    if path.suffix.lower() not in PICTURE_FORMATS:
        raise argparse.ArgumentTypeError(f"{text} does not end in {', '.join(PICTURE_FORMATS)}: name the picture's "
                                         "format, e.g. grid.png")  # fmt: skip
    return path


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
    # the defaults come from the recipe (fmnist.recipes) over settings.Config's, the seed's recipe.
    p = commands.add_parser("train", parents=[data_dir], help="train a model and write a run directory",
                            description="Train a model. Settings not given come from the model's recipe: "
                            + "; ".join(f"{m}: {', '.join(r)}" for m, r in RECIPES.items())
                            + " (the first is the default).")  # fmt: skip
    for name, declared in SETTINGS.items():
        _add_setting(p, name, declared)
    p.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<date>-<time>)")
    p.add_argument("--quiet", action="store_true", help="print only the final line (no progress, no epoch lines)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last finished epoch (only --epochs may change)")
    again.add_argument("--force", action="store_true", help="start over in an existing run directory")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("tune", parents=[data_dir], help="search training settings on a validation split",
                            description="Search training settings: each trial trains on the training set less "
                            "--val-size images and is scored on those; the best is trained on the whole training set "
                            "into OUT/best and written as OUT/recipe.json. Every setting takes one value, a list to "
                            "try (--batch-size 64,128,256), or a range (--lr 0.001:1:log, --epochs 5:30); the others "
                            "come from --recipe. The same command again continues a stopped sweep.")  # fmt: skip
    for name, declared in SETTINGS.items():
        _add_search(p, name, declared)
    p.add_argument("--out", type=Path, metavar="DIR", required=True,
                   help="the sweep folder: the study (study.db, unless --storage), tune.html, pictures, recipe.json, "
                   "best/")  # fmt: skip
    p.add_argument("--trials", type=_number(Range(int, 1, 10_000)), default=50, metavar="N",
                   help="trials the study is to hold that ended, counting other workers' (default: 50; grid: at most "
                   "the grid's size)")  # fmt: skip
    p.add_argument("--sampler", choices=searchspace.SAMPLERS, default="tpe",
                   help="how trials are drawn: Optuna's TPE, random, or every combination of the lists (default: tpe)")
    p.add_argument("--pruner", choices=searchspace.PRUNERS, default="halving",
                   help="stop trials whose validation accuracy after an epoch is poor: successive halving, the median "
                   "rule, or none (default: halving)")  # fmt: skip
    p.add_argument("--together", type=_number(Range(int, 1, 256)), default=searchspace.TOGETHER, metavar="K",
                   help="softmax-regression trials trained at once, in one pass over each batch (default: "
                   f"{searchspace.TOGETHER})")  # fmt: skip
    p.add_argument("--storage", metavar="URL", help="an Optuna database URL that several workers share, such as "
                   "postgresql://USER@HOST/DATABASE or sqlite:///PATH (default: OUT/study.db)")  # fmt: skip
    p.add_argument("--study", metavar="NAME", help="the study's name in --storage (default: OUT's folder name)")
    p.add_argument("--quiet", action="store_true", help="print only the final lines (no progress, no trial lines)")
    p.set_defaults(run=cmd_tune)

    p = commands.add_parser("eval", parents=[data_dir], help="score a run's model on the test set")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory written by `fmnist train`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser("predict", parents=[data_dir], help="classify your own pictures with a run's model")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory written by `fmnist train`")
    p.add_argument("images", type=Path, nargs="*", metavar="IMAGE",
                   help="PNG, JPEG or any picture Pillow reads; colour or grey, any size, either polarity")
    p.add_argument("--top", type=_number(Range(int, 1, 10)), default=3,
                   help="how many classes to list, 1-10 (default: 3)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per input in order")
    p.add_argument("--plot", type=_picture_path, metavar="FILE", help="also draw each input beside its probabilities")
    p.add_argument("--test-index", type=_number(Range(int, 0, 9_999)), nargs="+", default=[], metavar="I",
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
    p.add_argument("--n", type=_number(Range(int, 1, MAX_PICTURES)), default=18, help="how many images (default: 18)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="default: train")
    p.add_argument("--out", type=_picture_path, metavar="FILE", help="default: fashion-mnist-SPLIT.png")
    p.set_defaults(run=cmd_show)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def cmd_download(args: argparse.Namespace) -> int:
    from . import data

    chosen = data.chosen_dir(args.data_dir)
    if chosen is not None or args.force:  # fetch what is missing or damaged there (everything with --force)
        folder = data.download(chosen or data.cache_dir(), force=args.force)
    else:  # the first folder that has the files, else a download into the cache
        folder = data.locate()
    data.load(folder)  # verifies; a damaged file's message says how to repair its folder
    print(f"Fashion-MNIST is ready in {folder} (4 files, content verified by SHA-256)")
    return 0


def _fail(message: str, code: int = 1) -> int:
    print(f"fmnist: {'error: ' if code < 128 else ''}{message}", file=sys.stderr)
    return code


def _interrupted(message: str, signum: int = signal.SIGINT) -> int:
    """A stop's one line (Ctrl-C, SIGTERM or SIGHUP) and exit code 128 + signum; another meanwhile must not cut
    the line short."""
    previous = {stop: signal.signal(stop, signal.SIG_IGN) for stop in STOP_SIGNALS}
    try:
        return _fail(message, 128 + signum)
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def _stopped_by(signum: int) -> str:
    """How a stop is told: "interrupted" for Ctrl-C, "stopped by SIGTERM" for the others."""
    return "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"


def cmd_train(args: argparse.Namespace) -> int:
    from .rundir import RunDir
    from .train import Interrupted, train

    if args.resume and args.out is None:
        return _fail("--resume needs --out with the run directory to continue.", 2)
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    given = _given(args)
    if args.resume:  # the run's own settings, where none are given
        base = asdict(RunDir(out).config())
    else:
        try:
            base = recipe_settings(given.get("model", "softmax"), given.get("recipe"))
        except ValueError as e:
            return _fail(f"{e}.", 2)
    config = Config(**{**base, **given})
    log = (lambda line: None) if args.quiet else print
    log(f"training {config.model} ({config.recipe} recipe) for {config.epochs} epochs into {out}")
    try:
        summary = train(config, out, data_dir=args.data_dir, resume=args.resume, force=args.force, log=log,
                        progress=False if args.quiet else None)  # fmt: skip
    except Interrupted as stop:
        how = _stopped_by(stop.signum)
        if stop.all_done:
            return _interrupted(f"{how} after the last epoch; {out} keeps all {stop.epochs_done} epochs but not all "
                                f"its pictures and report. Draw them with: {stop.hint}", stop.signum)  # fmt: skip
        if stop.epochs_done:
            return _interrupted(f"{how}; {out} keeps {stop.epochs_done} finished epoch(s). Continue with: {stop.hint}",
                                stop.signum)  # fmt: skip
        kept = "; the run that --force was to replace is untouched" if stop.old_run_kept else ""
        return _interrupted(f"{how} before the first epoch had finished{kept}, so start again with the same command.",
                            stop.signum)  # fmt: skip
    print(
        f"done in {summary['seconds']:.1f} s: test accuracy {summary['test_acc']:.4f}, "
        f"train accuracy {summary['train_acc']:.4f}; run directory {out} (open {out / 'report.html'})"
    )
    return 0


def _given(args: argparse.Namespace) -> dict[str, object]:
    """The settings given on the command line, by name; a recipe file's (--recipe FILE) under them."""
    given = {name: getattr(args, name) for name in NAMES if getattr(args, name, None) is not None}
    if isinstance(given.get("recipe"), Path):
        given = {**recipefile.read(given.pop("recipe")), **given}
    return given


def cmd_tune(args: argparse.Namespace) -> int:
    try:
        with uninterrupted():  # Optuna and SQLAlchemy: a stop waits until they are imported
            from . import tune
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in ("optuna", "sqlalchemy"):
            raise
        return _fail("fmnist tune needs Optuna: pip install 'fmnist[tune]'.")

    given = _given(args)
    space = {name: value for name, value in given.items() if isinstance(value, searchspace.Values | searchspace.Span)}
    try:
        base = recipe_settings(given.get("model", "softmax"), given.get("recipe"))
    except ValueError as e:
        return _fail(f"{e}.", 2)
    fixed = {name: value for name, value in {**asdict(Config()), **base, **given}.items() if name not in space}
    plan = tune.Plan(fixed, space, args.sampler, args.pruner)
    log = None if args.quiet else print
    if log:
        log(f"searching {', '.join(map(option, space))} for {fixed['model']} ({fixed['recipe']} recipe): "
            f"{plan.trials(args.trials)} trials scored on {fixed['val_size']:,} held-out training images, into "
            f"{args.out}")  # fmt: skip
    try:
        result = tune.tune(plan, args.out, args.trials, args.together, args.storage, args.study, args.data_dir, log,
                           False if args.quiet else None)  # fmt: skip
    except tune.Interrupted as stop:
        words = [word.replace(args.storage, tune.shown(args.storage)) if args.storage else word for word in args.argv]
        hidden = " (with the password of --storage in place of ***)" if words != args.argv else ""
        how, again = _stopped_by(stop.signum), command("fmnist", *words) + hidden
        if stop.final:
            return _interrupted(f"{how} while training the best trial on the whole training set; the study holds its "
                                f"{stop.done} trials. Finish with: {again}", stop.signum)  # fmt: skip
        return _interrupted(f"{how}; the study holds {stop.done} trials that ended, and the ones being trained are "
                            f"asked again. Continue with: {again}", stop.signum)  # fmt: skip
    recipe = args.out / tune.RECIPE
    print(f"done: best trial {result.best.number}, validation accuracy {result.best.value:.4f}; trained on the whole "
          f"training set: test accuracy {result.summary['test_acc']:.4f} ({args.out / tune.BEST}). Open "
          f"{args.out / tune.PAGE}; train with the recipe: "
          f"{command('fmnist', 'train', f'--recipe={recipe}')}")  # fmt: skip
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from . import data, fileio, results
    from .evaluate import evaluate
    from .rundir import RESULTS, RunDir

    with RunDir(args.run_dir).locked() as run:
        config, rows, _ = run.read()
        net, _ = run.load_model()
        if not rows:
            return _fail(f"{args.run_dir} has no finished epoch yet; train it first.")
        write = fileio.writable(run.path)
        if write:  # every output checked before any is written
            run.check_outputs(RESULTS)
            run.remove_leftovers(RESULTS)
        dataset = data.load(args.data_dir)
        evaluation = evaluate(net, dataset)
        if write:
            results.write_results(run, net, config.model, run.description(), dataset, evaluation, rows)
    result = {"run_dir": str(args.run_dir), "model": config.model, **evaluation.scores}
    done = (f"pictures and report.html written to {args.run_dir}" if write else
            f"note: {args.run_dir} cannot be written, so its pictures and report were not redrawn")  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        if not write:
            print(done, file=sys.stderr)
        return 0
    images = sum(row["support"] for row in result["per_class"])
    print(f"{args.run_dir}: {config.model}, test accuracy {result['test_acc']:.4f} on {images} images")
    print(f"\n{'class':<12}{'images':>8}{'precision':>11}{'recall':>8}")
    for row in result["per_class"]:
        print(f"{row['label']:<12}{row['support']:>8}{row['precision']:>11.3f}{row['recall']:>8.3f}")
    print("(recall is the class's accuracy: the fraction of its images classified correctly)")
    print("\nmost confused (true -> predicted: images)")
    for pair in result["most_confused"]:
        print(f"  {pair['true']} -> {pair['predicted']}: {pair['count']}")
    print(f"\n{done}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from . import data, fileio, images, metrics, model
    from .rundir import RunDir

    if not args.images and not args.test_index:
        return _fail("give one or more image files, or --test-index.", 2)
    if args.explain and not args.plot:
        args.plot = Path("predictions.png")
    if args.plot and len(args.images) + len(args.test_index) > MAX_PLOTTED:
        return _fail(f"--plot draws at most {MAX_PLOTTED} images; give fewer, or leave out --plot.", 2)
    if args.plot:
        fileio.check_output(args.plot)
    net, config = RunDir(args.run_dir).load_model()
    if args.explain and config.model != "softmax":
        return _fail(f"--explain works for softmax regression only, and {args.run_dir} holds model "
                     f"{config.model!r}, whose decision is not a sum of pixel times weight; leave out --explain.",
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
        probs = iter(torch.softmax(metrics.finite(net(torch.stack(good))), dim=1) if good else [])
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
        print(json.dumps(results, indent=2, allow_nan=False))
    else:
        for r in results:
            answer = r.get("error") or ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"])
            print(f"{r['path']}: {answer}" + (f"  (true: {r['true']})" if "true" in r else ""))
    if args.plot and pictures:
        with uninterrupted():  # matplotlib: only when drawing; a stop waits for its import
            from . import plots

        X, P = torch.stack([x for x, _ in pictures]), torch.stack(shown)
        evidence = model.evidence(net, X, P.argmax(dim=1)) if args.explain else None
        plots.plot_predictions(X, P, names, args.plot, [title for _, title in pictures], evidence)
        print(f"picture written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    failed = [r for r in results if "error" in r]
    for r in failed if args.json else []:
        _fail(r["error"])
    return 1 if failed else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from . import compare, data

    if len(args.runs) < 2:
        return _fail("compare needs two or more run directories.", 2)
    if args.out:
        compare.check_out(args.out)
    dataset = data.load(args.data_dir)
    runs, failed = [], []
    for run_dir in args.runs:
        try:
            runs.append(compare.load_run(run_dir, dataset))
        except compare.RunError as e:
            failed.append({"run": str(run_dir), "error": str(e)})
            _fail(str(e))
    if len(runs) < 2:
        return _fail(f"only {len(runs)} of the {len(args.runs)} runs can be compared, and it takes two.")
    result = compare.compare(runs, failed)
    print(json.dumps(result, indent=2, allow_nan=False) if args.json else compare.format_text(result))
    if args.out:
        written = compare.write(args.out, result, runs)
        print(f"written: {', '.join(map(str, written))}", file=sys.stderr if args.json else sys.stdout)
    return 1 if failed else 0


def cmd_show(args: argparse.Namespace) -> int:
    from . import data, fileio

    with uninterrupted():  # matplotlib: a stop waits until it is imported
        from . import plots
    out = args.out or Path(f"fashion-mnist-{args.split}.png")
    fileio.check_output(out)
    dataset = data.load(args.data_dir)
    X, y = (dataset.train_images, dataset.train_labels) if args.split == "train" else (
        dataset.test_images, dataset.test_labels)  # fmt: skip
    n = min(args.n, len(y))
    plots.plot_tiles(X[:n], data.text_labels(y[:n]), out, columns=9, tile_inches=1.2)
    print(f"the first {n} {args.split} images with their labels: {out}")
    return 0


def _usable_streams() -> None:
    """Standard output and error that never fail on what fmnist prints: a stream closed before the start
    (`fmnist eval RUN >&-`) writes to nowhere, and characters its encoding lacks (a file name that is not
    valid UTF-8, PYTHONIOENCODING=ascii) are written as backslash escapes."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w", errors="backslashreplace"))  # noqa: SIM115 (for good)
        elif hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a bad argument, 1 for another user error,
    130 when interrupted, 141 when the output pipe closed)."""
    _usable_streams()
    try:
        args = build_parser().parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else list(argv)  # what continues a stopped command
        with uninterrupted():  # PyTorch, most of a command's start-up: a stop waits until it is imported
            import torch  # noqa: F401
        code = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, where it can still be answered quietly
        return code
    except UserError as e:
        return _fail(str(e))
    except BrokenPipeError:  # `fmnist eval RUN | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush is quiet too
        return 141
    except OSError as e:  # the file system said no: a full disk, a read-only folder, a missing parent folder
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}; check the path and the free space.")
    except KeyboardInterrupt as stop:  # at any moment outside training, which says more (cmd_train)
        signum = getattr(stop, "signum", signal.SIGINT)
        return _interrupted(f"{_stopped_by(signum)}; run the same command again to finish.", signum)


def run() -> None:
    """The `fmnist` program: main() with the command line, and its exit code."""
    sys.exit(main())
