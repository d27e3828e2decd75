"""fmnist tune: a search over training settings on an Optuna study, trials scored on a validation split.

The study (trials, their settings, each epoch's validation accuracy, results) lives in Optuna's RDB storage:
SQLite in the sweep folder, or a database that several workers, on one machine or many, share (--storage,
--study). A worker asks Optuna's sampler (TPE, random or grid) for trials and trains them: softmax-regression
trials K at a time through fmnist.trials.TrialGroup (one pass over each batch for all of them), the others one
at a time (SingleTrial, fmnist train's loop). After every epoch it reports each trial's validation accuracy, and
the pruner (Optuna's successive halving or median rule) stops the poor ones; a trial is told its result as soon
as it ends. A worker asks for trials until the study holds --trials that ended, counting those other workers run.

A worker records a heartbeat for the trials it trains. Trials it held when it stopped are lost and asked again
with the same settings (Optuna's RetryHeartbeatStaleTrialCallback): at once after Ctrl-C, SIGTERM or SIGHUP, on
the next start of the same command after a kill (the sweep folder's lock says nobody else trains its own
study), and by any other worker once their heartbeat is older than GRACE_SECONDS (a shared study).

When the study is done, the best trial's settings are trained on the whole training set into the run folder
best/ (fmnist.train; scored once on the test set) and written as recipe.json (`fmnist train --recipe FILE`),
and tune.html, accuracy.png, history.png and importance.png show the search.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from . import data, fileio, recipefile, report, rundir, searchspace, train, trials
from .errors import UserError
from .settings import Config, SettingError

SPEC_FORMAT = "fmnist-tune-1"  # the study's user attribute "fmnist": what it searches
SWEEP, STUDY, PAGE, RECIPE, BEST = "sweep.json", "study.db", "tune.html", "recipe.json", "best"
PICTURES = ("accuracy", "history", "importance")  # NAME.png
OUTPUTS = (SWEEP, PAGE, RECIPE, *(f"{name}.png" for name in PICTURES))
SWEEP_LIMIT = 64 << 10  # bytes of sweep.json read at most
HEARTBEAT_SECONDS, GRACE_SECONDS = 10, 60  # a trial whose worker was silent for a minute is asked again
WAIT_SECONDS = 2.0  # between looks at a study whose last trials other workers are training
BEST_SHOWN = 10  # rows of the table of the best trials
WORKER = f"{socket.gethostname()}:{os.getpid()}"
STORE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)  # the database failed

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Optuna marks the heartbeat and the constant liar as experimental, and says heartbeats are meant for its own
# optimize loop; fmnist's loop records them itself.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


class TuneError(UserError):
    """The sweep cannot go on (a folder, store or study that does not fit the command); the message says why."""


class Interrupted(Exception):
    """tune was stopped by Ctrl-C, SIGTERM or SIGHUP. done: trials the study holds that ended; final: it was
    training the best trial on the whole training set; signum: the signal."""

    def __init__(self, done: int, final: bool, signum: int) -> None:
        super().__init__(f"interrupted with {done} trials done")
        self.done, self.final, self.signum = done, final, signum


@dataclass(frozen=True)
class Plan:
    """What a sweep tries: fixed, every setting that is not searched (a Config's fields); space, the searched
    ones (fmnist.searchspace); the sampler and pruner by name. SettingError when a trial could be a Config
    that cannot train, when nothing is searched, or when trials would not be scored on a validation split."""

    fixed: dict[str, object]
    space: dict[str, searchspace.Search]
    sampler: str = "tpe"
    pruner: str = "halving"

    def __post_init__(self) -> None:
        if self.sampler not in searchspace.SAMPLERS or self.pruner not in searchspace.PRUNERS:
            raise SettingError(f"no sampler {self.sampler!r} or pruner {self.pruner!r}: the samplers are "
                               f"{', '.join(searchspace.SAMPLERS)}, the pruners "
                               f"{', '.join(searchspace.PRUNERS)}")  # fmt: skip
        if not self.space:
            raise SettingError("nothing to search: give a list or a range for a setting, e.g. --lr 0.001:1:log")
        if not self.fixed.get("val_size"):
            raise SettingError("--val-size must be at least 1 in fmnist tune: trials are scored on the validation "
                               "split it holds out, never on the test set")  # fmt: skip
        searchspace.check(self.fixed, self.space)
        if self.sampler == "grid":
            searchspace.grid(self.space)

    def spec(self) -> dict:
        """The plan as JSON, as the study records it: a worker with another plan is refused."""
        return {"format": SPEC_FORMAT, "fixed": self.fixed, "space": {n: s.spec() for n, s in self.space.items()},
                "sampler": self.sampler, "pruner": self.pruner}  # fmt: skip

    def config(self, params: dict[str, object]) -> Config:
        """A trial's settings: its params (searched settings by name) over the fixed ones."""
        return Config(**{**self.fixed, **params})

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {name: search.distribution() for name, search in self.space.items()}

    def trials(self, wanted: int) -> int:
        """How many trials a sweep of wanted trials runs: the grid sampler's at most its grid's size."""
        if self.sampler != "grid":
            return wanted
        size = 1
        for values in searchspace.grid(self.space).values():
            size *= len(values)
        return min(wanted, size)


@dataclass
class Result:
    """What a finished sweep found: the best trial, and the summary of its run on the whole training set
    (fmnist train's)."""

    best: FrozenTrial
    summary: dict


# ---------------------------------------------------------------- the sweep folder and the study


def shown(url: str) -> str:
    """A storage URL to show: its password hidden."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def _claim(out: Path, storage: str | None, study: str | None) -> str:
    """The study name of the sweep in the locked folder out: a new one when out is empty (recorded in
    sweep.json), else the one sweep.json names, which storage and study must not contradict. TuneError when
    out holds anything else, or another sweep."""
    held = sorted(p.name for p in out.iterdir())
    if SWEEP in held:
        saved = _read_sweep(out / SWEEP)
        wanted = {"study": study or saved["study"], "storage": shown(storage) if storage else STUDY}
        if wanted != saved:
            raise TuneError(f"{out} holds the sweep of study {saved['study']!r} in {saved['storage']}; continue it "
                            "with the same --study and --storage, or choose another --out.")  # fmt: skip
        name = saved["study"]
    elif held:
        listed = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise TuneError(f"{out} is not empty (it holds {listed}); choose a new or empty folder for --out.")
    else:
        name = study or _text(out.absolute().name) or "fmnist"
        fileio.write_json(out / SWEEP, {"format": SPEC_FORMAT, "study": name, "storage": shown(storage) if storage
                                        else STUDY})  # fmt: skip
    return name


def _text(name: str) -> str:
    """A file name as text a database stores: bytes that are not UTF-8 (surrogate escapes) as "�"."""
    return os.fsencode(name).decode("utf-8", "replace")


def own_url(path: Path) -> str:
    """The SQLite URL of the study file path, as shown (its bytes that are not UTF-8 as "�"); open_study
    opens the file itself by path."""
    return sqlalchemy.engine.URL.create("sqlite", database=_text(str(path.absolute()))).render_as_string()


def _read_sweep(path: Path) -> dict:
    """sweep.json's study and storage; TuneError when it is not fmnist's."""
    try:
        saved = json.loads(fileio.read_bounded(path, SWEEP_LIMIT))
        if saved.get("format") != SPEC_FORMAT or not all(isinstance(saved.get(k), str) for k in ("study", "storage")):
            raise ValueError(path)
    except (OSError, ValueError, AttributeError, RecursionError, UserError):
        raise TuneError(f"{path} is not a sweep.json that fmnist tune wrote; choose another --out.") from None
    return {"study": saved["study"], "storage": saved["storage"]}


def open_study(url: str, name: str, plan: Plan, grace: int = GRACE_SECONDS,
               path: Path | None = None) -> tuple[optuna.Study, RDBStorage]:  # fmt: skip
    """The study name in the storage at url (or in the SQLite file path), made when new, with plan's sampler
    and pruner, and that storage (heartbeats older than grace seconds are stale); TuneError when the store
    cannot be opened, or holds a study of that name that searches something else."""
    try:
        storage = _storage(url, grace, path)
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                    sampler=_sampler(plan), pruner=_pruner(plan.pruner))  # fmt: skip
    except ImportError as e:  # Optuna's, from SQLAlchemy's ModuleNotFoundError for the URL's driver
        driver = getattr(e.__cause__, "name", None) or getattr(e, "name", None) or "its database driver"
        raise TuneError(f"the study store {shown(url)} needs {driver}, which is not installed; for PostgreSQL: "
                        "pip install 'fmnist[postgres]'.") from None  # fmt: skip
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError, ValueError) as e:
        raise TuneError(f"cannot open the study store {shown(url)} ({_reason(e, url)}); check --storage (a URL "
                        "such as sqlite:///PATH or postgresql://USER@HOST/DATABASE) and that its server "
                        "runs.") from None  # fmt: skip
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise TuneError(f"study {name!r} in {shown(url)} minimises; it is not fmnist's, so name another --study.")
    spec = json.loads(json.dumps(plan.spec()))  # as the store gives it back
    saved = study.user_attrs.get("fmnist")
    if saved is None and study.trials:
        raise TuneError(f"study {name!r} in {shown(url)} was not made by fmnist tune; name another --study.")
    if saved is None:
        study.set_user_attr("fmnist", spec)
        saved = spec
    if saved != spec:
        raise TuneError(f"study {name!r} in {shown(url)} searches with other settings ({_differences(saved, spec)}); "
                        "give the command that started it, or name another --study.")  # fmt: skip
    return study, storage


def _storage(url: str, grace: int, path: Path | None, attempts: int = 5) -> RDBStorage:
    """Optuna's RDB storage at url with heartbeats. Workers that start together on a new database create its
    tables at once, and all but one may then fail (PostgreSQL: a duplicate key of a table's type; SQLite: a
    table that already exists): those try again, after a pause, when the tables exist. path: a SQLite file
    opened by its bytes (url, then, only shows it): a URL holds text only."""
    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": 60}} if sqlite else {}
    if path is not None:
        engine = {"creator": lambda: sqlite3.connect(os.fsencode(path), timeout=60, check_same_thread=False)}
    for attempt in range(attempts):
        try:
            storage = RDBStorage(url, engine_kwargs=engine,
                                 heartbeat_interval=min(HEARTBEAT_SECONDS, grace), grace_period=grace,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())  # fmt: skip
            break
        except sqlalchemy.exc.DBAPIError as e:
            meanwhile = isinstance(e, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError) or (
                "already exists" in str(e))  # fmt: skip
            if not meanwhile or attempt == attempts - 1:
                raise
            time.sleep(0.5 + attempt)
    if sqlite:
        sqlalchemy.event.listen(storage.engine, "connect", _write_ahead_log)
        storage.engine.dispose()  # the connections made so far, without it
    return storage


def _write_ahead_log(connection: object, record: object) -> None:
    """SQLite in write-ahead-log mode, synced at checkpoints: a report of a trial's epoch took 1.3 ms instead
    of 14 ms, and a kill still loses no committed write (a power cut may lose the last ones)."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


def _reason(error: Exception, url: str) -> str:
    """An error of the store in a few words, without the URL's password."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    reason = text[0] if text else type(error).__name__
    try:
        password = sqlalchemy.engine.make_url(url).password
    except sqlalchemy.exc.ArgumentError:
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    return reason if len(reason) <= 160 else reason[:159] + "…"


def _differences(saved: dict, spec: dict) -> str:
    """What differs between two plans' specs, in words: "lr 0.001:1:log, not 0.01:1", "weight_decay 0,0.01, not
    fixed at 0", "sampler tpe, not grid"."""

    def tried(plan: dict, name: str) -> str:
        searched = plan.get("space", {}).get(name)
        if isinstance(searched, dict) and "values" in searched:
            return ",".join(map(str, searched["values"]))
        if isinstance(searched, dict):
            return f"{searched.get('low')}:{searched.get('high')}" + (":log" if searched.get("log") else "")
        return f"fixed at {plan.get('fixed', {}).get(name)}"

    names = sorted({*saved.get("space", {}), *saved.get("fixed", {}), *spec["space"], *spec["fixed"]})
    words = [f"{name} {tried(saved, name)}, not {tried(spec, name)}" for name in names
             if tried(saved, name) != tried(spec, name)]  # fmt: skip
    words += [f"{key} {saved.get(key)}, not {spec[key]}" for key in ("sampler", "pruner")
              if saved.get(key) != spec[key]]  # fmt: skip
    return "; ".join(words) or "another format"


def _sampler(plan: Plan) -> optuna.samplers.BaseSampler:
    if plan.sampler == "grid":
        return _Grid(searchspace.grid(plan.space))
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler()
    return optuna.samplers.TPESampler(constant_liar=True)  # trials asked together, or by other workers, differ


class _Grid(optuna.samplers.GridSampler):
    """Optuna's grid sampler, which asks the study to stop after the grid's last trial: something only its
    optimize loop allows (in ask-and-tell it raises). fmnist tune stops by itself, after the grid's size."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: object) -> None:
        pass


def _pruner(name: str) -> optuna.pruners.BasePruner:
    """Successive halving (asynchronous: a trial goes on past epochs 1, 4, 16... when in the best quarter of
    those that reached it), the median rule, or none."""
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if name == "median":
        return optuna.pruners.MedianPruner()
    return optuna.pruners.NopPruner()


# ---------------------------------------------------------------- the trials


def counted(trial: FrozenTrial) -> bool:
    """True for a trial that ended and counts towards --trials: complete, pruned, or failed by training
    (its "error" says how); a lost one (failed without an error) is asked again instead."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and "error" in trial.user_attrs)  # fmt: skip


class Worker:
    """This process's part of a study: asks trials, trains them, reports and tells their results, and keeps
    a heartbeat for the ones it holds (running), which it gives up as lost when it stops."""

    def __init__(self, study: optuna.Study, storage: RDBStorage, plan: Plan, dataset: data.FashionMNIST,
                 together: int, say: Callable[[str], None]) -> None:  # fmt: skip
        self.study, self.storage, self.plan, self.dataset, self.say = study, storage, plan, dataset, say
        self.together = together if plan.fixed["model"] == "softmax" else 1
        self.study_id = self.storage.get_study_id_from_name(study.study_name)
        self.running: dict[int, int] = {}  # trial number -> trial id, for the heartbeat
        self.lock = threading.Lock()

    def run(self, wanted: int, bar: tqdm | None = None) -> None:
        """Train trials until the study holds wanted counted ones (bar, when given, counts them); trials held
        when this stops are lost (and asked again)."""
        waiting = False
        with self._heartbeat():
            try:
                while True:
                    optuna.storages.fail_stale_trials(self.study)
                    ended = self.study.get_trials(deepcopy=False)
                    done = sum(map(counted, ended))
                    if bar is not None:
                        bar.update(min(done, wanted) - bar.n)
                    if done >= wanted:
                        return
                    room = wanted - done - sum(t.state == TrialState.RUNNING for t in ended)
                    if room <= 0:
                        if not waiting:
                            self.say("waiting for the trials other workers are training")
                        waiting = True
                        time.sleep(WAIT_SECONDS)
                        continue
                    waiting = False
                    self._train([self._ask() for _ in range(min(room, self.together))])
            except BaseException:
                self.give_up()
                raise

    def _ask(self) -> optuna.Trial:
        """A trial from the sampler (or the study's queue), held with a heartbeat; a stop waits until it is."""
        with fileio.uninterrupted():
            trial = self.study.ask(self.plan.distributions())
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
            self.storage.record_heartbeat(trial_id)
            with self.lock:
                self.running[trial.number] = trial_id
        return trial

    def _train(self, asked: list[optuna.Trial]) -> None:
        """Train the asked trials: those that can, together (fmnist.trials.group), the others alone."""
        configs = [self.plan.config(trial.params) for trial in asked]
        groups, alone = trials.group(configs)
        for indices in [*groups, *([i] for i in alone)]:
            chosen = [configs[i] for i in indices]
            engine = trials.SingleTrial(chosen[0], self.dataset) if indices[0] in alone else trials.TrialGroup(
                chosen, self.dataset)  # fmt: skip
            self._run(engine, [asked[i] for i in indices])

    def _run(self, engine: trials.TrialGroup | trials.SingleTrial, asked: list[optuna.Trial]) -> None:
        """Train engine's trials (asked, in its order) epoch by epoch: report each one's validation accuracy,
        stop those the pruner prunes, tell each its result when it ends."""
        told: set[int] = set()
        prune = self.plan.pruner != "none"
        for epoch, rows in engine.epochs():
            for j, row in rows.items():
                asked[j].report(row["val_acc"], epoch)
            for j in rows:
                if prune and engine.outcomes[j].status == "running" and asked[j].should_prune():
                    engine.stop(j)
            for j, outcome in enumerate(engine.outcomes):
                if outcome.status != "running" and j not in told:
                    self._tell(asked[j], outcome)
                    told.add(j)

    def _tell(self, trial: optuna.Trial, outcome: trials.Outcome) -> None:
        rows = outcome.rows
        result = {"worker": WORKER, "epochs": len(rows), "seconds": round(sum(row["seconds"] for row in rows), 4)}
        if rows:
            result.update(train_loss=rows[-1]["train_loss"], train_acc=rows[-1]["train_acc"])
        with fileio.uninterrupted():  # told whole, or not at all (then it is lost and asked again)
            trial.set_user_attr("result", result)
            if outcome.status == "done":
                self.study.tell(trial, rows[-1]["val_acc"])
            elif outcome.status == "stopped":
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                trial.set_user_attr("error", outcome.error)
                self.study.tell(trial, state=TrialState.FAIL)
            with self.lock:
                del self.running[trial.number]
        self.say(_trial_line(trial, outcome, self.plan))

    def give_up(self) -> None:
        """Mark the trials this worker holds as lost (failed without an error) and ask for each again with the
        same settings, as Optuna does for a stale one; signals wait until it is done."""
        with fileio.uninterrupted():
            with self.lock:
                numbers = list(self.running)
                self.running.clear()
            for number in numbers:
                try:
                    give_up(self.study, number)
                except STORE_ERRORS:  # the store is gone: the trial stays running until its heartbeat is stale
                    pass

    @contextmanager
    def _heartbeat(self) -> Iterator[None]:
        """A thread that records, every heartbeat interval, that this process still trains its trials."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.storage.get_heartbeat_interval()):
                with self.lock:
                    ids = list(self.running.values())
                try:
                    for trial_id in ids:
                        self.storage.record_heartbeat(trial_id)
                except STORE_ERRORS:
                    pass  # the store is unreachable: the main thread meets the same error and stops

        thread = threading.Thread(target=beat, name="fmnist-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def give_up(study: optuna.Study, number: int) -> None:
    """Fail the running trial number as lost, and put a trial with its settings in the study's queue."""
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state != TrialState.RUNNING:
        return
    try:
        study.tell(number, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker took it meanwhile (a stale one)
        return
    RetryHeartbeatStaleTrialCallback()(study, study.get_trials(deepcopy=False)[number])


def _trial_line(trial: optuna.Trial, outcome: trials.Outcome, plan: Plan) -> str:
    """One line about a trial that ended as outcome says: its number, result and searched settings."""
    epochs = len(outcome.rows)
    if outcome.status == "done":
        what = f"val acc {outcome.rows[-1]['val_acc']:.4f}  {epochs:3d} epochs"
    elif outcome.status == "stopped":
        what = f"pruned after {epochs} epoch{'s' if epochs != 1 else ''} (val acc {outcome.rows[-1]['val_acc']:.4f})"
    else:
        what = f"failed: {outcome.error}"
    settings = "  ".join(f"{name} {_value(trial.params[name])}" for name in plan.space)
    return f"trial {trial.number:4d}  {what}  {settings}"


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- the whole command


def tune(plan: Plan, out: Path, trials_wanted: int, together: int = searchspace.TOGETHER,
         storage: str | None = None, study_name: str | None = None, data_dir: str | Path | None = None,
         log: Callable[[str], None] | None = print, progress: bool | None = None) -> Result:  # fmt: skip
    """Run the sweep plan in the folder out (new, empty, or a sweep of the same study) until its study holds
    trials_wanted trials that ended, then train the best on the whole training set and write the sweep's files.

    storage: an Optuna RDB URL shared with other workers (default: SQLite in out); study_name: the study's
    name there (default: out's name); together: softmax trials trained at once; log: where lines go (None:
    nowhere); progress: a bar over the trials (None: on a terminal). The folder is locked for the whole call.
    Interrupted when a stop signal comes, after the trials being trained are given up.
    """
    fileio.make_out_folder(out)
    with fileio.exclusive(out):
        for name in (*OUTPUTS, STUDY):
            fileio.check_output(out / name)
        if (out / BEST).is_symlink() or (out / BEST).exists() and not (out / BEST).is_dir():
            raise fileio.PathError(f"{out / BEST} exists and is not a folder; move it away, fmnist tune trains the "
                                   "best trial into it.")  # fmt: skip
        fileio.remove_leftovers(out, OUTPUTS)
        train.resolve_device(str(plan.fixed["device"]))
        dataset = data.load(data_dir)
        train.check_split(dataset, plan.fixed["val_size"])
        name = _claim(out, storage, study_name)
        url = storage or own_url(out / STUDY)
        study, store = open_study(url, name, plan, path=None if storage else out / STUDY)
        try:
            if storage is None:  # nobody else trains this folder's own study: what is running was lost
                for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    give_up(study, trial.number)
            say = _Say(log)
            _search(Worker(study, store, plan, dataset, together, say), say, plan.trials(trials_wanted), progress)
            best, summary = _best(study, plan, out, data_dir, log, progress)
            _write_sweep(out, study, plan, best, summary, shown(url) if storage else str(out / STUDY))
        except STORE_ERRORS as e:
            raise TuneError(f"the study store {shown(url)} failed ({_reason(e, url)}); the trials that ended are "
                            "kept there, so run the same command again once it works.") from None  # fmt: skip
        finally:
            store.engine.dispose()  # its connections: SQLite folds its write-ahead log into study.db
    return Result(best, summary)


class _Say:
    """Where a sweep's lines go: log (None: nowhere), above the progress bar when one is shown."""

    def __init__(self, log: Callable[[str], None] | None) -> None:
        self.log, self.bar = log, None

    def __call__(self, line: str) -> None:
        if self.log is not None:
            (self.bar.write if self.bar is not None and not self.bar.disable else self.log)(line)


def _search(worker: Worker, say: _Say, wanted: int, progress: bool | None) -> None:
    """worker's trials until the study holds wanted ended ones, with a progress bar (its lines, say's, above
    it); Interrupted by a stop."""
    bar = tqdm(total=wanted, unit="trial", leave=False, disable=None if progress is None else not progress)
    say.bar = bar
    try:
        worker.run(wanted, bar)
    except KeyboardInterrupt as stop:
        raise Interrupted(sum(map(counted, worker.study.get_trials(deepcopy=False))), False,
                          getattr(stop, "signum", signal.SIGINT)) from None  # fmt: skip
    finally:
        bar.close()
        say.bar = None


def _best(study: optuna.Study, plan: Plan, out: Path, data_dir: str | Path | None,
          log: Callable[[str], None] | None, progress: bool | None) -> tuple[FrozenTrial, dict]:  # fmt: skip
    """The study's best trial and the summary of its settings trained on the whole training set in out/best."""
    ended = study.get_trials(deepcopy=False)
    try:
        best = study.best_trial
    except ValueError:
        pruned, failed = (sum(t.state == s for t in ended) for s in (TrialState.PRUNED, TrialState.FAIL))
        raise TuneError(f"no trial of study {study.study_name!r} trained all its epochs ({pruned} pruned, {failed} "
                        "failed); search other values, e.g. smaller learning rates.") from None  # fmt: skip
    if log is not None:
        log(best_table(ended, plan))
        log(f"training trial {best.number}'s settings on the whole training set into {out / BEST}")
    try:
        return best, _train_best(replace(plan.config(best.params), val_size=0), out / BEST, data_dir, log, progress)
    except train.Interrupted as stop:
        raise Interrupted(sum(map(counted, ended)), True, stop.signum) from None


def _train_best(config: Config, path: Path, data_dir: str | Path | None, log: Callable[[str], None] | None,
                progress: bool | None) -> dict:  # fmt: skip
    """The summary of config's run in path: trained there (fmnist.train), continued when a stopped run of the
    same settings is there, or read back when that run is done; another run there is replaced."""
    run = rundir.RunDir(path)
    same = False
    if path.is_dir() and (path / rundir.CONFIG).is_file():
        try:
            theirs = asdict(run.config())
            same = all(theirs[k] == v for k, v in asdict(config).items() if k not in ("device", "threads"))
        except rundir.RunDirError:
            same = False
    if same and (path / rundir.SUMMARY).is_file():
        return rundir.read_json(path / rundir.SUMMARY)
    resume = same and (path / rundir.CHECKPOINT).is_file()
    return train.train(config, path, data_dir, log=log or (lambda line: None), progress=False if log is None else
                       progress, resume=resume, force=not resume)  # fmt: skip


def best_table(ended: list[FrozenTrial], plan: Plan, rows: int = BEST_SHOWN) -> str:
    """The best complete trials by validation accuracy as a text table, with their searched settings."""
    complete = sorted((t for t in ended if t.state == TrialState.COMPLETE), key=lambda t: (-t.value, t.number))
    names = list(plan.space)
    widths = [max(len(name), 8) for name in names]
    head = f"{'trial':>6}  {'val acc':>8}  {'trained':>7}  {'seconds':>8}  " + "  ".join(
        f"{n:>{w}}" for n, w in zip(names, widths, strict=True))  # fmt: skip
    lines = [f"the best {min(rows, len(complete))} of {len(complete)} trials that trained all their epochs "
             f"(validation accuracy on {plan.fixed['val_size']:,} held-out training images)", head]  # fmt: skip
    for t in complete[:rows]:
        result = t.user_attrs.get("result", {})
        lines.append(f"{t.number:>6}  {t.value:>8.4f}  {result.get('epochs', 0):>7}  {result.get('seconds', 0):>8.2f}  "
                     + "  ".join(f"{_value(t.params[n]):>{w}}"
                                 for n, w in zip(names, widths, strict=True)))  # fmt: skip
    return "\n".join(lines)


# ---------------------------------------------------------------- the sweep's files


def _write_sweep(out: Path, study: optuna.Study, plan: Plan, best: FrozenTrial, summary: dict,
                 store: str) -> None:  # fmt: skip
    """Write recipe.json (the best trial's settings), the pictures and tune.html."""
    final = replace(plan.config(best.params), val_size=0)
    with fileio.uninterrupted():  # matplotlib: a stop waits until it is imported
        from . import plots
    ended = study.get_trials(deepcopy=False)
    scored = [t for t in ended if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.value is not None]
    done = [t for t in ended if t.state == TrialState.COMPLETE]
    settings = {name: ([t.params[name] for t in scored], search.scale()) for name, search in plan.space.items()}
    pictures = {
        "accuracy": plots.png(
            plots.plot_search, settings, [t.value for t in scored], [t.state == TrialState.COMPLETE for t in scored]
        ),  # fmt: skip
        "history": plots.png(plots.plot_history, [t.number for t in done], [t.value for t in done]),
    }
    importances = _importances(study, plan, len(done))
    if isinstance(importances, dict):
        pictures["importance"] = plots.png(plots.plot_importance, importances)
    recipefile.write(out / RECIPE, asdict(final))
    for name, png in pictures.items():
        fileio.write_atomic(out / f"{name}.png", png)
    stats = [("best validation accuracy", f"{100 * best.value:.2f}%"),
             ("its test accuracy, trained on all images", f"{100 * summary['test_acc']:.2f}%"),
             ("trials", str(sum(map(counted, ended))))]  # fmt: skip
    searched = [(name, search.text()) for name, search in plan.space.items()]
    columns, rows = _trials_table(ended, plan)
    page = report.tune_page(study.study_name, _subtitle(ended, plan, store), stats, _recipe_rows(final, plan), BEST,
                            searched + [(name, f"{value} (fixed)") for name, value in plan.fixed.items()], columns,
                            rows, pictures, [] if isinstance(importances, dict) else [importances])  # fmt: skip
    fileio.write_atomic(out / PAGE, page)


def _importances(study: optuna.Study, plan: Plan, complete: int) -> dict[str, float] | str:
    """The searched settings' importances (Optuna's PED-ANOVA evaluator: no scikit-learn, which fANOVA needs),
    or why there are none."""
    if complete < 2:
        return f"Importances need at least 2 trials that trained all their epochs; this study has {complete}."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), params=list(plan.space)
            )
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            return f"The importances could not be estimated from these trials ({e})."
    if caught:  # e.g. the best trials and the others cannot be told apart: the importances are then all equal
        return f"The importances could not be estimated from these trials (Optuna: {caught[0].message})"
    return importances


def _subtitle(ended: list[FrozenTrial], plan: Plan, store: str) -> str:
    states = {s: sum(t.state == s for t in ended) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    return (f"{states[TrialState.COMPLETE]} trials trained all their epochs, {states[TrialState.PRUNED]} were "
            f"pruned (pruner: {plan.pruner}), {states[TrialState.FAIL]} failed; sampler {plan.sampler}; every trial "
            f"scored on {plan.fixed['val_size']:,} training images held out by seed {plan.fixed['seed']}, never on "
            f"the test set. Study store: {store}.")  # fmt: skip


def _recipe_rows(final: Config, plan: Plan) -> list[tuple[str, str]]:
    settings = asdict(final)
    return [(name, f"{_value(value)}{' (searched)' if name in plan.space else ''}") for name, value in settings.items()
            if name not in recipefile.NOT_WRITTEN]  # fmt: skip


def _trials_table(ended: list[FrozenTrial], plan: Plan) -> tuple[list[str], list[list[str]]]:
    columns = ["trial", "state", "val acc", "epochs trained", "seconds", *plan.space]
    rows = []
    for t in ended:
        result = t.user_attrs.get("result", {})
        state = t.state.name.lower() if t.state != TrialState.FAIL or "error" in t.user_attrs else "lost"
        rows.append([str(t.number), state, "" if t.value is None else f"{t.value:.4f}", str(result.get("epochs", "")),
                     f"{result['seconds']:.2f}" if "seconds" in result else "",
                     *(_value(t.params[n]) if n in t.params else "" for n in plan.space)])  # fmt: skip
    return columns, rows
