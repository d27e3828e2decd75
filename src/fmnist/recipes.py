"""Named training recipes: the settings each model trains with unless told otherwise.

Plain data, importable without PyTorch so the command line can check names at once.
Every recipe lists only what differs from settings.Config's defaults, which are the seed
notebook's recipe. How the non-seed recipes were chosen (on a validation split, never on
the test set) is in docs/recipes.md, with the `fmnist tune` commands that rerun the search.
"""

from __future__ import annotations

RECIPES: dict[str, dict[str, dict[str, object]]] = {
    "softmax": {
        # The seed notebook: SGD lr 0.1, batch 256, 10 epochs, raw pixels.
        "seed": {},
        # Still one linear layer on the 784 pixels.
        "tuned": {
            "epochs": 20,
            "optimizer": "adam",
            "lr": 0.001,
            "schedule": "cosine",
            "normalize": "global",
        },
    },
    "mlp": {
        # The book's multilayer perceptron (784-256-10, ReLU) with what makes it better.
        "tuned": {
            "epochs": 20,
            "optimizer": "adam",
            "lr": 0.001,
            "schedule": "cosine",
            "normalize": "pixel",
            "dropout": 0.3,
        },
    },
    "cnn": {
        # Two convolution blocks with batch normalisation, in the LeNet line.
        "tuned": {
            "epochs": 15,
            "batch_size": 128,
            "optimizer": "adam",
            "lr": 0.002,
            "schedule": "cosine",
            "normalize": "global",
            "dropout": 0.3,
        },
    },
    "lenet": {
        # The book's LeNet-5 chapter: sigmoid, average pooling, SGD lr 0.9, 10 epochs.
        "book": {"lr": 0.9},
    },
}

MODELS = tuple(RECIPES)  # model.build builds exactly these (a test checks)


def default_recipe(model: str) -> str:
    """The recipe a model trains with when none is named: the first one listed."""
    return next(iter(RECIPES[model]))


def recipe_settings(model: str, recipe: str | None = None) -> dict[str, object]:
    """model's recipe as Config fields (model and recipe included); ValueError for unknown names."""
    if model not in RECIPES:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    recipe = recipe or default_recipe(model)
    if recipe not in RECIPES[model]:
        raise ValueError(f"model {model} has no recipe {recipe!r}; choose one of {', '.join(RECIPES[model])}")
    return {"model": model, "recipe": recipe, **RECIPES[model][recipe]}
