"""The search behind the tuned recipes: candidates scored on a validation split, never on test.

    .venv/bin/python bench/search.py softmax            # or mlp, cnn; --quick for fewer epochs

Each candidate trains on 50,000 training images and is scored on the other 10,000 (chosen
by seed 0, the same for every candidate). The best by validation accuracy is then trained
on all 60,000 images, and only that final model is scored on the test set. The printed
table is what docs/recipes.md quotes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fmnist.recipes import recipe_settings
from fmnist.settings import Config
from fmnist.train import train

VAL_SIZE = 10_000

# What each model's search tries, as changes to a base; the first entry is the base itself.
CANDIDATES: dict[str, tuple[dict, list[dict]]] = {
    "softmax": (
        {"model": "softmax", "recipe": "tuned", "epochs": 20, "optimizer": "adam", "lr": 0.001,
         "schedule": "cosine", "normalize": "pixel"},
        [
            {},
            {"optimizer": "sgd", "lr": 0.1, "schedule": "constant", "normalize": "none", "recipe": "seed"},
            {"optimizer": "momentum", "lr": 0.02},
            {"normalize": "global"},
            {"lr": 0.003},
            {"lr": 0.0005},
            {"weight_decay": 0.01},
            {"weight_decay": 0.05},
            {"label_smoothing": 0.1},
            {"batch_size": 128},
            {"batch_size": 512},
            {"epochs": 40},
            {"augment": "shift"},
        ],
    ),
    "mlp": (
        {"model": "mlp", "recipe": "tuned", "epochs": 20, "optimizer": "adam", "lr": 0.001,
         "schedule": "cosine", "normalize": "pixel", "dropout": 0.3},
        [
            {},
            {"optimizer": "sgd", "lr": 0.1, "schedule": "constant", "normalize": "none", "dropout": 0.0},
            {"dropout": 0.5},
            {"weight_decay": 0.05},
            {"epochs": 30},
            {"augment": "shift", "epochs": 30},
        ],
    ),
    "cnn": (
        {"model": "cnn", "recipe": "tuned", "epochs": 8, "batch_size": 128, "optimizer": "adam", "lr": 0.002,
         "schedule": "cosine", "normalize": "global", "dropout": 0.3},
        [
            {},
            {"augment": "shift"},
            {"epochs": 15},
        ],
    ),
}  # fmt: skip


def score(settings: dict, val_size: int) -> dict:
    """Train with settings; the summary (val_acc when val_size, test_acc otherwise) and seconds."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = train(Config(**{**settings, "val_size": val_size}), Path(out), log=lambda line: None, progress=False)
        return {**summary, "wall": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(CANDIDATES))
    parser.add_argument("--final-only", action="store_true", help="only retrain the model's current recipe")
    parser.add_argument("--only", type=int, nargs="+", metavar="I", help="try only these candidates (0 = the base)")
    args = parser.parse_args()
    base, changes = CANDIDATES[args.model]
    if not args.final_only:
        print("| change to the base | epochs | val acc | train s |\n|---|---|---|---|", flush=True)
        results = []
        for change in changes if args.only is None else [changes[i] for i in args.only]:
            settings = {**base, **change}
            result = score(settings, VAL_SIZE)
            results.append((result["val_acc"], change))
            print(f"| {change or 'base: ' + str(base)} | {settings['epochs']} | {result['val_acc']:.4f} "
                  f"| {result['wall']:.0f} |", flush=True)  # fmt: skip
        best = max(results, key=lambda r: r[0])
        print(f"\nbest on validation: {best[1] or 'the base'} ({best[0]:.4f})")
    final = recipe_settings(args.model, "tuned")
    result = score(final, 0)
    if args.only is not None:
        return
    print(f"recipe in fmnist.recipes, trained on all 60,000: test acc {result['test_acc']:.4f} "
          f"in {result['wall']:.0f} s ({final})")


if __name__ == "__main__":
    main()
