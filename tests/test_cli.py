"""The command line: fast help, one-line errors, hostile run directories."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fmnist import cli, recipes
from fmnist.settings import SETTINGS, Config


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist", *args], capture_output=True, text=True, **kwargs)


def test_help_and_argument_errors_do_not_import_torch():
    probe = (
        "import sys\nfrom fmnist.cli import main\n"
        "for argv in (['--help'], ['train', '--help'], ['train', '--lr', '-1']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--batch-size", "0"], "--batch-size: must be a whole number from 1 to 60000, got 0"),
        (["train", "--epochs", "0"], "--epochs: must be a whole number from 1 to 10000, got 0"),
        (["train", "--lr", "-0.1"], "--lr: must be a number greater than 0 and at most 100, got -0.1"),
        (["train", "--lr", "fast"], "--lr: 'fast' is not a number"),
        (["train", "--model", "resnet"], "invalid choice: 'resnet'"),
        (["train", "--device", "tpu"], "invalid choice: 'tpu'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train", "--resume", "--force", "--out", "x"], "--force: not allowed with argument --resume"),
        (["train", "--resume"], "--resume needs --out"),
        (["train", "--label-smoothing", "1.5"], "--label-smoothing: must be a number at least 0 and less than 1"),
        (["train", "--dropout", "-0.1"], "--dropout: must be a number at least 0 and less than 1, got -0.1"),
        (["train", "--seed", str(2**64)], "--seed: must be a whole number from 0 to 9223372036854775807"),
        (["predict", "run", "--top", "11"], "--top: must be a whole number from 1 to 10, got 11"),
        (["show", "--n", "100000"], "--n: must be a whole number from 1 to 400, got 100000"),
    ],
)
def test_nonsense_arguments_get_one_line_and_exit_2(args, message):
    done = _run(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and message in done.stderr


def test_every_training_setting_is_an_option_with_its_declared_check_and_default():
    train = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    options = {a.dest: a for a in train._actions}
    for name, declared in SETTINGS.items():
        option = options[name]
        assert option.default is None  # given or not: --resume tells them apart
        if name == "recipe":  # a named recipe, or a recipe file (fmnist.recipefile)
            assert [option.type(choice) for choice in declared.choices] == list(declared.choices)
            assert option.type("mine.toml") == Path("mine.toml")
            continue
        assert tuple(option.choices or ()) == declared.choices
        default = next(f.default for f in dataclasses.fields(Config) if f.name == name)
        assert f"(default: {default})" in option.help
    assert tuple(options["model"].choices) == recipes.MODELS
    with pytest.raises(SystemExit) as exit:  # the declared bound, through the command line
        cli.main(["train", "--epochs", "10001"])
    assert exit.value.code == 2


def test_missing_run_directory(tmp_path):
    done = _run("eval", str(tmp_path / "nope"))
    assert done.returncode == 1
    expected = f"{tmp_path / 'nope'} is not a directory; pass a run directory made by `fmnist train`."
    assert done.stderr == f"fmnist: error: {expected}\n"


class _Canary:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_pickle_in_place_of_the_weights_is_refused_and_never_run(run_dir, tmp_path):
    canary = tmp_path / "pickle-was-run"
    (run_dir / "model.safetensors").write_bytes(pickle.dumps({"weight": _Canary(canary)}))
    done = _run("eval", str(run_dir))  # FMNIST_DATA, set by small_data, points at the small dataset
    assert done.returncode == 1 and "not a valid safetensors file" in done.stderr
    assert "Traceback" not in done.stderr and not canary.exists()


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"weight": torch.zeros(10, 100), "bias": torch.zeros(10)}, "'weight' is torch.float32 (10, 100)"),
        ({"weight": torch.zeros(10, 784, dtype=torch.float64), "bias": torch.zeros(10)}, "torch.float64"),
        ({"weight": torch.zeros(10, 784)}, "expected tensors ['bias', 'weight']"),
    ],
)
def test_weights_of_the_wrong_shape_or_dtype_are_refused(run_dir, capsys, tensors, message):
    save_file(tensors, str(run_dir / "model.safetensors"))
    assert cli.main(["eval", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "does not fit model 'softmax'" in err and message in err


def test_truncated_weights_are_refused(run_dir, capsys):
    path = run_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    assert cli.main(["eval", str(run_dir)]) == 1
    assert "not a valid safetensors file" in capsys.readouterr().err


def test_an_existing_run_is_not_overwritten_without_force(run_dir, capsys):
    before = (run_dir / "model.safetensors").read_bytes()
    assert cli.main(["train", "--out", str(run_dir), "--epochs", "1"]) == 1
    assert "already holds a run; pass --resume to continue it, --force to start over" in capsys.readouterr().err
    assert (run_dir / "model.safetensors").read_bytes() == before
    assert cli.main(["train", "--out", str(run_dir), "--epochs", "1", "--batch-size", "20", "--force"]) == 0
    assert (run_dir / "model.safetensors").read_bytes() != before
