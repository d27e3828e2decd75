"""fmnist tune: its search space from the settings' declarations, the sweep it writes, and the study read back
through Optuna's own API; recipe files, parsed strictly; bad input answered in one line before any work.

One sweep (SWEEP below) runs once for the module on a small dataset that a linear model does not learn
perfectly, so that validation accuracies differ between trials; the tests read what it left.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import write_dataset
from PIL import Image
from runfolders import shell_words

from fmnist import cli, data, fileio, searchspace, trials, tune
from fmnist.recipes import recipe_settings
from fmnist.searchspace import Span, Values
from fmnist.settings import Config, SettingError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Optuna's notes that fmnist tune hides on the command line (fmnist.tune), which pytest shows again
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning",
                                        "ignore:Heartbeat of storage:UserWarning")  # fmt: skip
VAL_SIZE = 200
SWEEP = ["--trials", "12", "--together", "6", "--val-size", str(VAL_SIZE), "--lr", "0.001:0.03:log",
         "--batch-size", "16,32", "--epochs", "2:5", "--optimizer", "sgd,adam"]  # fmt: skip
SEARCHED = ("lr", "batch_size", "epochs", "optimizer")


def blurred_classes(n_train: int = 700, n_test: int = 200, seed: int = 1) -> dict[str, np.ndarray]:
    """Ten class prototypes under much noise: trials of a linear model differ in accuracy here. Learning rates
    stay below the unstable range, where any rounding grows (so trials trained together differ from alone)."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, size=(10, 28, 28))
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, size=n)
        noise = rng.integers(0, 256, size=(n, 28, 28))
        arrays[f"{split}_images"] = (0.15 * prototypes[labels] + 0.85 * noise).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.astype(np.uint8)
    return arrays


def fmnist(*args: str | Path) -> tuple[int, str, str]:
    """`fmnist ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as e:  # argparse's errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def blurred(tmp_path_factory) -> Path:
    """The folder of blurred_classes()'s dataset, which fmnist accepts for the module's tests."""
    folder = tmp_path_factory.mktemp("blurred")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "FILES", write_dataset(folder, blurred_classes()))
        yield folder


@pytest.fixture(scope="module")
def sweep(blurred, tmp_path_factory) -> tuple[Path, str]:
    """(the sweep folder, what the command printed) of one `fmnist tune` over four settings."""
    out = tmp_path_factory.mktemp("sweeps") / "lr"
    code, printed, err = fmnist("tune", "--out", out, "--data-dir", blurred, *SWEEP)
    assert code == 0, err
    return out, printed


def study_of(out: Path) -> optuna.Study:
    """The sweep's study, opened with Optuna alone."""
    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")


# ---------------------------------------------------------------- the search space


@pytest.mark.parametrize("name, text, expected", [
    ("lr", "0.001:1:log", Span(float, 0.001, 1.0, True)),
    ("epochs", "5:30", Span(int, 5, 30, False)),
    ("batch_size", "64,128,256", Values((64, 128, 256))),
    ("weight_decay", "0,1e-4,1e-3", Values((0.0, 1e-4, 1e-3))),
    ("optimizer", "sgd,adam", Values(("sgd", "adam"))),
    ("lr", "0.05", 0.05),
    ("threads", "auto", "auto"),
])  # fmt: skip
def test_search_options_take_values_lists_and_ranges(name, text, expected):
    parsed = searchspace.parse(name, text)
    assert parsed == expected and type(parsed) is type(expected)
    if isinstance(parsed, Span):
        assert all(type(end) is parsed.kind for end in parsed.ends())


@pytest.mark.parametrize("name, text, says", [
    ("lr", "0:1", "greater than 0"),  # the setting's bounds, from its declaration
    ("lr", "0.1:1e39", "at most 100"),
    ("epochs", "1:20000", "from 1 to 10000"),
    ("epochs", "2.5:5", "whole number"),
    ("batch_size", "0,64", "from 1 to 60000"),
    ("lr", "1:0.1", "low end must be below"),
    ("weight_decay", "0:0.1:log", "log scale needs a low end above 0"),
    ("lr", "0.1:1:ln", "LOW:HIGH:log"),
    ("optimizer", "sgd:adam", "takes names"),
    ("optimizer", "sgd,rmsprop", "one of sgd, momentum, adam"),
    ("lr", "0.1,0.1", "twice"),
    ("seed", "0,1", "validation split"),  # what must stay fixed
    ("val_size", "100:200", "takes one value"),
    ("model", "softmax,mlp", "takes one value"),
])  # fmt: skip
def test_search_options_are_checked_by_the_settings_declarations(name, text, says):
    with pytest.raises(SettingError, match=re.escape(says)):
        searchspace.parse(name, text)


@pytest.mark.parametrize("args, says", [
    (["--dropout", "0:0.5"], "--dropout 0.5, and model softmax cannot apply --dropout 0.5"),
    (["--impl", "concise,scratch", "--optimizer", "sgd,adam"], "--optimizer adam, --impl scratch, and impl scratch"),
    (["--impl", "scratch", "--recipe", "tuned", "--lr", "0.1:1"], "cannot apply --optimizer adam"),
    (["--sampler", "grid", "--lr", "0.1:1"], "grid sampler tries lists"),
    (["--epochs", "3"], "nothing to search"),
    (["--val-size", "0", "--lr", "0.1,1"], "--val-size must be at least 1"),
])  # fmt: skip
def test_a_search_that_could_draw_a_setting_that_cannot_train_is_refused_before_any_work(tmp_path, args, says):
    code, printed, err = fmnist("tune", "--out", tmp_path / "sweep", *args)
    assert code == 1 and says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("option", ["--lr 1e39:1e40", "--epochs 99999999999999999999", "--lr inf,1", "--seed 0,1",
                                    "--batch-size 64:128:log:log", "--recipe nonsense"])  # fmt: skip
def test_bad_arguments_get_one_line_and_exit_2(tmp_path, option):
    code, printed, err = fmnist("tune", "--out", tmp_path / "sweep", *option.split())
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()


# ---------------------------------------------------------------- the sweep


def test_the_study_holds_every_trial_within_the_search_space(sweep):
    out, printed = sweep
    study = study_of(out)
    ended = study.get_trials()
    assert len(ended) == 12 and {t.state for t in ended} <= {optuna.trial.TrialState.COMPLETE,
                                                             optuna.trial.TrialState.PRUNED}  # fmt: skip
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in ended)  # successive halving is on by default
    for t in ended:
        p = t.params
        assert set(p) == set(SEARCHED)
        assert 0.001 <= p["lr"] <= 0.03 and p["batch_size"] in (16, 32) and p["optimizer"] in ("sgd", "adam")
        assert type(p["epochs"]) is int and 2 <= p["epochs"] <= 5
        epochs = sorted(t.intermediate_values)
        assert epochs == list(range(1, len(epochs) + 1))  # one validation accuracy per epoch trained
        assert t.user_attrs["result"]["epochs"] == len(epochs)
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert len(epochs) == p["epochs"] and t.value == t.intermediate_values[p["epochs"]]
        else:
            assert len(epochs) < p["epochs"]
    assert study.user_attrs["fmnist"]["space"]["lr"] == {"low": 0.001, "high": 0.03, "log": True, "int": False}
    for t in ended:  # a line per trial, as it ended
        assert re.search(rf"^trial +{t.number} ", printed, re.M)


def test_trials_trained_together_score_as_each_one_trained_alone(sweep, blurred):
    """The softmax trials were trained several at once (fmnist.trials.TrialGroup); each one's validation
    accuracy after every epoch is what fmnist train's own loop gives it alone, up to an example whose two largest
    logits tie to float rounding (see tests/test_trials.py)."""
    out, _ = sweep
    dataset = data.load(blurred)
    for t in study_of(out).get_trials():
        config = Config(val_size=VAL_SIZE, **t.params)
        single = trials.SingleTrial(config, dataset)
        for epoch, _ in single.epochs():
            if epoch == len(t.intermediate_values):
                single.stop(0)
        alone = [row["val_acc"] for row in single.outcomes[0].rows]
        together = [t.intermediate_values[e] for e in sorted(t.intermediate_values)]
        assert np.allclose(alone, together, rtol=0, atol=1 / VAL_SIZE + 1e-12), (t.number, alone, together)


def test_the_best_trial_is_trained_on_every_training_image_and_written_as_a_recipe(sweep, blurred, tmp_path):
    out, printed = sweep
    best = study_of(out).best_trial
    expected = {**asdict(Config(**best.params)), "val_size": 0}
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe == {k: v for k, v in expected.items() if k not in ("device", "threads", "val_size")}
    config = json.loads((out / "best" / "config.json").read_text())
    assert {k: config[k] for k in expected if k not in ("device", "threads")} == {
        k: v for k, v in expected.items() if k not in ("device", "threads")}  # fmt: skip
    header = (out / "best" / "metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,train_acc,test_acc,seconds"  # scored on test, no validation split
    summary = json.loads((out / "best" / "summary.json").read_text())
    assert f"test accuracy {summary['test_acc']:.4f}" in printed
    # the recipe file trains the same run again, bit for bit (same seed, same thread)
    code, _, err = fmnist("train", "--recipe", out / "recipe.json", "--out", tmp_path / "again", "--data-dir", blurred,
                          "--quiet")  # fmt: skip
    assert code == 0, err

    def rows(path: Path) -> list[list[str]]:
        return [line.split(",")[:-1] for line in (path / "metrics.csv").read_text().splitlines()]

    assert rows(tmp_path / "again") == rows(out / "best")


def test_tune_html_is_one_self_contained_page_with_the_pictures(sweep):
    out, _ = sweep
    page = (out / "tune.html").read_text()
    assert "default-src 'none'" in page and "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert 'href="best/report.html"' in page
    assert page.count("data:image/png;base64,") == 3
    assert len(re.findall(r"<tr><td class=\"num\">\d+</td>", page)) == 12  # a row per trial
    for name in ("accuracy", "history", "importance"):
        with Image.open(out / f"{name}.png") as picture:
            assert picture.format == "PNG" and picture.width > 400


def test_the_same_command_continues_its_study_and_another_is_refused(sweep, blurred, tmp_path):
    out = tmp_path / "lr"
    shutil.copytree(sweep[0], out)
    best_run = (out / "best" / "metrics.csv").stat().st_mtime_ns
    (out / ".tune.html.k3x9q2ab.tmp").write_text("what a killed write of tune.html leaves")
    code, printed, err = fmnist("tune", "--out", out, "--data-dir", blurred, *SWEEP)
    assert code == 0, err
    assert not (out / ".tune.html.k3x9q2ab.tmp").exists()
    assert len(study_of(out).trials) == 12 and not re.search(r"^trial +\d", printed, re.M)  # nothing more to train
    assert (out / "best" / "metrics.csv").stat().st_mtime_ns == best_run  # and its best run is kept
    more = [*SWEEP[:1], "14", *SWEEP[2:]]
    code, printed, err = fmnist("tune", "--out", out, "--data-dir", blurred, *more)
    assert code == 0, err
    assert sum(map(tune.counted, study_of(out).trials)) == 14
    other = [*SWEEP[:7], "0.01:1:log", *SWEEP[8:]]
    code, printed, err = fmnist("tune", "--out", out, "--data-dir", blurred, *other)
    assert code == 1 and "searches with other settings (lr 0.001:0.03:log, not 0.01:1.0:log)" in err
    assert err.count("\n") == 1


def test_other_models_train_one_trial_at_a_time_and_the_grid_tries_each_combination_once(blurred, tmp_path):
    out = tmp_path / "grid"
    code, printed, err = fmnist("tune", "--out", out, "--data-dir", blurred, "--model", "mlp", "--sampler", "grid",
                                "--lr", "0.01,0.1", "--batch-size", "32,64", "--epochs", "1", "--val-size", "100",
                                "--optimizer", "sgd", "--threads", "1", "--trials", "50", "--quiet")  # fmt: skip
    assert code == 0, err
    ended = study_of(out).trials
    assert sorted((t.params["lr"], t.params["batch_size"]) for t in ended) == [(0.01, 32), (0.01, 64), (0.1, 32),
                                                                                (0.1, 64)]  # fmt: skip
    dataset = data.load(blurred)
    for t in ended:  # the same path as fmnist train: the same bits
        settings = {
            **recipe_settings("mlp"),
            "optimizer": "sgd",
            "threads": 1,
            **t.params,
            "epochs": 1,
            "val_size": 100,
        }
        single = trials.SingleTrial(Config(**settings), dataset)
        list(single.epochs())
        assert single.outcomes[0].rows[-1]["val_acc"] == t.value


# ---------------------------------------------------------------- the folder, the store


def test_a_folder_holding_anything_else_is_not_taken(blurred, tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = fmnist("tune", "--out", out, "--data-dir", blurred, "--lr", "0.1,1", "--val-size", "100")
    assert code == 1 and "is not empty (it holds notes.txt)" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_sweep_folder_has_one_owner_at_a_time(blurred, tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    with fileio.exclusive(out):  # as another fmnist command holds it
        code, _, err = fmnist("tune", "--out", out, "--data-dir", blurred, "--lr", "0.1,1", "--val-size", "100")
    assert code == 1 and "is in use by another fmnist command" in err
    assert not list(out.iterdir())


def test_an_output_that_is_not_a_regular_file_is_refused_before_any_work(blurred, tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    os.mkfifo(out / "tune.html")
    code, _, err = fmnist("tune", "--out", out, "--data-dir", blurred, "--lr", "0.1,1", "--val-size", "100")
    assert code == 1 and "tune.html exists and is a FIFO" in err
    assert sorted(p.name for p in out.iterdir()) == ["tune.html"]


def test_a_damaged_study_file_is_named_in_one_line(blurred, tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"format": tune.SPEC_FORMAT, "study": "sweep", "storage": "study.db"}))
    (out / "study.db").write_bytes(b"not a database" * 100)
    code, _, err = fmnist("tune", "--out", out, "--data-dir", blurred, "--lr", "0.1,1", "--val-size", "100")
    assert code == 1 and "cannot open the study store" in err and "file is not a database" in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("url, says", [
    ("postgresql://fmnist:s3cret@127.0.0.1:9/none", "postgresql://fmnist:***@127.0.0.1:9/none"),
    ("nonsense://x", "cannot open the study store nonsense://x"),
    ("not a url", "cannot open the study store not a url"),
])  # fmt: skip
def test_a_store_that_cannot_be_opened_is_named_without_its_password(blurred, tmp_path, url, says):
    code, _, err = fmnist("tune", "--out", tmp_path / "sweep", "--data-dir", blurred, "--lr", "0.1,1",
                          "--val-size", "100", "--storage", url)  # fmt: skip
    assert code == 1 and says in err and "s3cret" not in err and err.count("\n") == 1


def test_a_study_made_for_another_search_or_by_something_else_is_not_used(blurred, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="theirs", storage=url, direction="maximize").add_trial(
        optuna.create_trial(value=0.5, params={"x": 1.0}, distributions={
            "x": optuna.distributions.FloatDistribution(0, 2)}))  # fmt: skip
    code, _, err = fmnist("tune", "--out", tmp_path / "a", "--data-dir", blurred, "--lr", "0.1,1", "--val-size", "100",
                          "--storage", url, "--study", "theirs")  # fmt: skip
    assert code == 1 and "was not made by fmnist tune" in err


def test_a_worker_takes_over_the_trials_of_a_worker_whose_heartbeat_stopped(blurred, tmp_path):
    fixed = {name: value for name, value in asdict(Config(val_size=100, epochs=2)).items() if name != "lr"}
    plan = tune.Plan(fixed, {"lr": searchspace.parse("lr", "0.01:1:log")}, "random", "none")
    study, storage = tune.open_study(f"sqlite:///{tmp_path / 'shared.db'}", "s", plan, grace=1)
    dead = study.ask(plan.distributions())  # a trial held by a worker that died: its heartbeat ends there
    storage.record_heartbeat(storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("s"), dead.number))  # fmt: skip
    time.sleep(2.5)
    tune.Worker(study, storage, plan, data.load(blurred), 4, lambda line: None).run(3)
    ended = study.get_trials()
    assert ended[dead.number].state == optuna.trial.TrialState.FAIL and "error" not in ended[dead.number].user_attrs
    retry = [t for t in ended if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].params == dead.params and retry[0].state.is_finished()
    assert sum(map(tune.counted, ended)) == 3


# ---------------------------------------------------------------- recipe files


def test_a_toml_recipe_file_trains_with_its_settings(small_data, tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('model = "softmax"\nrecipe = "tuned"\nepochs = 2\nlr = 0.003\nbatch_size = 50\n')
    code, _, err = fmnist("train", "--recipe", recipe, "--out", tmp_path / "run", "--lr", "0.002", "--quiet")
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    expected = {**tomllib.loads(recipe.read_text()), "lr": 0.002}  # the command line over the file
    assert {k: config[k] for k in expected} == expected
    assert config["optimizer"] == "adam" and config["normalize"] == "global"  # the rest: the tuned recipe's


@pytest.mark.parametrize("name, content, says", [
    ("r.json", '{"lr": 0.1, "lr": 0.2}', "'lr' is given twice"),
    ("r.json", '{"lr": NaN}', "NaN is not a number JSON allows"),
    ("r.json", '{"lr": Infinity}', "Infinity is not a number JSON allows"),
    ("r.json", '{"lr": 1e999}', "lr must be a number greater than 0"),
    ("r.json", '{"lrate": 0.1}', "names 'lrate', which is not a setting"),
    ("r.json", '{"epochs": 20.0}', "epochs must be a whole number"),
    ("r.json", '{"epochs": true}', "epochs must be a whole number"),
    ("r.json", '{"optimizer": "rmsprop"}', "optimizer must be one of sgd, momentum, adam"),
    ("r.json", '[1, 2]', "holds list, not an object"),
    ("r.json", "[" * 50_000, "is not valid JSON"),
    ("r.json", '{"lr": 0.1', "is not valid JSON"),
    ("r.json", " " * (64 << 10) + "{}", "is larger than 65,536 bytes"),
    ("r.toml", "lr = 0.1\nlr = 0.2\n", "is not valid TOML"),
    ("r.toml", "lr = inf\n", "lr must be a number greater than 0"),
    ("r.toml", "[lr]\nx = 1\n", "lr must be a number"),
    ("r.json", b'{"model": "\xff"}', "is not UTF-8 text"),
    ("r.json", '{"recipe": "book"}', "model softmax has no recipe 'book'"),
    ("r.json", '{"dropout": 0.5}', "model softmax cannot apply --dropout 0.5"),
])  # fmt: skip
def test_a_recipe_file_is_parsed_strictly_and_checked_by_the_declarations(small_data, tmp_path, name, content, says):
    recipe = tmp_path / name
    recipe.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, _, err = fmnist("train", "--recipe", recipe, "--out", tmp_path / "run")
    assert code in (1, 2) and says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_recipe_file_that_is_not_a_regular_file_is_not_read(small_data, tmp_path):
    os.mkfifo(tmp_path / "r.json")
    code, _, err = fmnist("train", "--recipe", tmp_path / "r.json", "--out", tmp_path / "run")
    assert code == 1 and "is a FIFO, not a regular file" in err


def test_the_hint_after_a_stop_is_the_same_command_with_the_storage_password_hidden(monkeypatch, tmp_path):
    def stopped(*args, **kwargs):
        raise tune.Interrupted(3, False, signal.SIGTERM)

    monkeypatch.setattr(tune, "tune", stopped)
    code, _, err = fmnist("tune", f"--out={tmp_path / 'a b'}", "--lr", "0.1,1", "--storage",
                          "postgresql://tuner:s3cret@db.example/fmnist")  # fmt: skip
    assert code == 128 + signal.SIGTERM and err.count("\n") == 1 and "s3cret" not in err
    assert "stopped by SIGTERM; the study holds 3 trials that ended" in err
    words = shell_words(err.split("Continue with: ")[1].split(" (with the password")[0])
    assert words == ["fmnist", "tune", f"--out={tmp_path / 'a b'}", "--lr", "0.1,1", "--storage",
                     "postgresql://tuner:***@db.example/fmnist"]  # fmt: skip
