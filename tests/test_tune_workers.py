"""fmnist tune's study shared and survived: two workers at once on one study (SQLite, and PostgreSQL started by
the test), a sweep stopped by Ctrl-C or killed and continued by the same command, each checked through Optuna's
own API: no trial lost, none run twice.

PostgreSQL runs from Debian's postgresql package (initdb, pg_ctl), a server of the test's own in a temporary
folder, on a unix socket there only, as an unprivileged user when the tests run as root (postgres refuses
root). Without the package those tests fail saying what to install (`make test` installs it); a plain pytest
leaves them out (marked postgres, and slow).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from conftest import small_fmnist, wait_for_line
from runfolders import shell_words

from fmnist import tune

COMMON = ["--val-size", "50", "--sampler", "random", "--pruner", "none", "--lr", "0.001:0.1:log"]
NO_POSTGRES = "the PostgreSQL server is not installed (initdb, pg_ctl): apt-get install postgresql (make test does)"


def _server_binaries() -> Path | None:
    """The folder of PostgreSQL's initdb and pg_ctl: Debian's newest, else the ones on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgres_url() -> str:
    """The URL of a PostgreSQL server started for these tests (trust authentication, role fmnist, on a unix
    socket in its own temporary folder, no TCP), stopped after them."""
    binaries = _server_binaries()
    if binaries is None:
        pytest.fail(NO_POSTGRES)
    folder = Path(tempfile.mkdtemp(prefix="fmnist-pg-"))  # short: a socket's path has at most 107 bytes
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _exists("postgres") else "nobody"
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    cluster = folder / "data"

    def run(*words: str | Path) -> None:
        done = subprocess.run([*as_user, *map(str, words)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    run(binaries / "initdb", "-D", cluster, "-U", "fmnist", "--auth=trust", "--no-sync", "-E", "UTF8")
    run(binaries / "pg_ctl", "-D", cluster, "-l", folder / "server.log", "-w", "-o",
        f"-k {folder} -c listen_addresses='' -c fsync=off", "start")  # fmt: skip
    try:
        yield f"postgresql://fmnist@/postgres?host={folder}"
    finally:
        run(binaries / "pg_ctl", "-D", cluster, "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def _numbers(printed: str) -> list[int]:
    """The trial numbers of a worker's lines, one per trial it trained."""
    return [int(n) for n in re.findall(r"^trial +(\d+) ", printed, re.M)]


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_workers_at_once_share_one_study_and_no_trial_is_lost_or_run_twice(small_data, tmp_path, request, store):
    url = f"sqlite:///{tmp_path / 'shared.db'}" if store == "sqlite" else request.getfixturevalue("postgres_url")
    args = ["--storage", url, "--study", f"both-{store}", "--trials", "30", "--together", "2", "--epochs", "20:40",
            *COMMON]  # fmt: skip
    workers = [small_fmnist("tune", "--out", str(tmp_path / name), *args) for name in ("a", "b")]
    printed = [worker.communicate(timeout=300) for worker in workers]
    for worker, (_, err) in zip(workers, printed, strict=True):
        assert worker.returncode == 0, err
    study = optuna.load_study(study_name=f"both-{store}", storage=url)
    ended = study.get_trials()
    assert {t.state for t in ended} == {optuna.trial.TrialState.COMPLETE}  # none running, waiting, lost or failed
    assert 30 <= len(ended) <= 32  # two workers may both take the last place: at most a trial each beyond
    trained = [_numbers(out) for out, _ in printed]
    assert all(trained), "both workers trained trials"
    assert sorted(trained[0] + trained[1]) == [t.number for t in ended]  # each trial trained once, by one worker
    by_worker = {t.number: t.user_attrs["result"]["worker"] for t in ended}
    for numbers, worker in zip(trained, workers, strict=True):
        assert {by_worker[n] for n in numbers} == {f"{os.uname().nodename}:{worker.pid}"}
    for name in ("a", "b"):  # each worker ends with the whole study's report
        assert f"<h1>fmnist tune: both-{store}</h1>" in (tmp_path / name / "tune.html").read_text()


@pytest.mark.slow
def test_ctrl_c_gives_the_running_trials_up_and_the_pasted_hint_continues(small_data, tmp_path):
    out = tmp_path / "sweep"
    args = ["tune", f"--out={out}", "--trials", "4", "--together", "2", "--epochs", "100:150", *COMMON]
    sweep = small_fmnist(*args)
    try:
        wait_for_line(sweep, "trial ")  # a trial ended; its group-mate, or the next two, are training
        sweep.send_signal(signal.SIGINT)
        _, err = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    found = re.search(r"the study holds (\d+) trials that ended", line)
    assert found, line
    done = int(found[1])
    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{out / 'study.db'}")
    ended = study.get_trials()
    assert sum(map(tune.counted, ended)) == done
    lost = [t for t in ended if t.state == optuna.trial.TrialState.FAIL]
    assert lost and all("error" not in t.user_attrs for t in lost)
    assert not [t for t in ended if t.state == optuna.trial.TrialState.RUNNING]
    queued = {t.system_attrs["failed_trial"]: t for t in ended if t.state == optuna.trial.TrialState.WAITING}
    assert sorted(queued) == [t.number for t in lost] and all(queued[t.number].params == t.params for t in lost)
    words = shell_words(line.split("Continue with: ")[1])
    assert words[:2] == ["fmnist", "tune"]
    again = small_fmnist(*words[1:])
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    ended = study.get_trials()
    assert sum(map(tune.counted, ended)) == 4 and all(t.state.is_finished() for t in ended)
    for t in lost:  # asked again with the same settings, and trained this time
        retry = next(r for r in ended if r.system_attrs.get("failed_trial") == t.number)
        assert retry.params == t.params and retry.state == optuna.trial.TrialState.COMPLETE


@pytest.mark.slow
def test_a_killed_sweep_continues_with_the_same_command_and_loses_only_its_running_trials(small_data, tmp_path):
    args = ["tune", "--out", str(tmp_path / "sweep"), "--trials", "6", "--together", "2", "--epochs", "150:200",
            *COMMON]  # fmt: skip
    sweep = small_fmnist(*args)
    try:
        wait_for_line(sweep, "trial ")
        sweep.kill()  # kill -9: no handler runs, the trials it held stay running in the study
        sweep.wait(timeout=60)
    finally:
        sweep.kill()
    storage = f"sqlite:///{tmp_path / 'sweep' / 'study.db'}"
    held = [t.number for t in optuna.load_study(study_name="sweep", storage=storage).get_trials()
            if t.state == optuna.trial.TrialState.RUNNING]  # fmt: skip
    assert held
    again = small_fmnist(*args)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    ended = optuna.load_study(study_name="sweep", storage=storage).get_trials()
    assert sum(map(tune.counted, ended)) == 6 and all(t.state.is_finished() for t in ended)
    for number in held:  # lost, then asked again with its settings
        assert ended[number].state == optuna.trial.TrialState.FAIL and "error" not in ended[number].user_attrs
        retry = next(t for t in ended if t.system_attrs.get("failed_trial") == number)
        assert retry.params == ended[number].params and retry.state == optuna.trial.TrialState.COMPLETE
