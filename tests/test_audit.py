"""The leak audit: deliberate leaks inflate results, are labelled LEAKED, and exist only here."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from examples.momentum_rule import MomentumRule
from models.forecaster import TrainEvent
from simulator.audit import LEAKED, _PeekNextClose, pinned_model, run_audit
from simulator.audit_folder import AuditFolder, default_audit_dir, run_key, variant_key
from simulator.clikit import Reporter
from simulator.config import Config, load_config
from simulator.errors import ConfigError, RunDirError
from simulator.session import Session
from simulator.sight import Sight
from simulator.training import open_registry, train_from_config
from strategies.rule import History, State
from tests.conftest import PAPER_CONFIG, PAPER_FAST, REPO
from tests.helpers import cli, error_line, sets

MOMENTUM = REPO / "examples" / "momentum.toml"
YEAR = ["backtest.start=2022-07-01", "backtest.end=2023-06-23", "report.baselines="]


def test_peek_next_close_hands_the_rule_the_next_weeks_history() -> None:
    weeks = pd.date_range("2024-01-05", periods=4, freq="W-FRI")
    closes = pd.DataFrame({"A": [1.0, 2.0, 3.0, 4.0]}, index=weeks)
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    class Spy:
        name = "spy"

        def decide(self, week: pd.Timestamp, history: History, state: State) -> dict[str, float]:
            seen.append((week, history.closes.index[-1]))
            return {}

    leaky = _PeekNextClose(Spy(), Sight(closes))
    leaky.decide(weeks[1], History.cut(closes, weeks[1], ["A"]), State(1.0, 1.0))
    assert seen == [(weeks[2], weeks[2])]  # asked about t+1, with its close


def test_a_leak_inflates_a_short_horizon_rule_and_is_labelled(tmp_path: Path) -> None:
    """One-week momentum is noise honestly; told next week's close, it cannot miss."""
    cfg = load_config(MOMENTUM, [*YEAR, "backtest.fill=close"])
    honest = run_audit(cfg, tmp_path, ["honest"])[0]
    table, results = run_audit(cfg, tmp_path)  # the config's rule: 12-week momentum
    assert list(table["variant"]) == [
        "honest", "peek_next_close", "train_through_test", "scaler_full", "early_stop_on_test"
    ]  # fmt: skip
    assert table.loc[0, "total_return"] == honest.loc[0, "total_return"]
    assert results["peek_next_close"].summary.strategy_name == (
        f"momentum [{LEAKED}: peek_next_close]"
    )
    for row in (2, 3, 4):
        assert "needs a strategy that trades on models" in table.loc[row, "note"]
    # 1-week momentum: the leak knows each week's winners before it trades them.
    import simulator.audit as audit

    class OneWeek(MomentumRule):
        name = "one-week"

        def __init__(self) -> None:
            super().__init__(lookback=1, top=3)

    from simulator.backtest import run_backtest
    from simulator.session import Session

    session = Session.open(cfg, tmp_path, rule=OneWeek)
    fair = run_backtest(session, tmp_path).summary.series["strategy"].total_return
    leaky = session.with_plan(audit._peeking(session.plan, session.sight))
    leaked = run_backtest(leaky, tmp_path)
    assert leaked.summary.series["strategy"].total_return > fair + 1.0  # > 100 points more


def test_no_config_field_switches_a_leak_on() -> None:
    fields = str(Config.model_json_schema())
    for leak in ("peek", "leak", "through_test", "scaler_full"):
        assert leak not in fields


def test_audit_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    argv = ["audit", str(MOMENTUM), "--set", "report.baselines=", "--set", YEAR[0]]
    argv += ["--out", str(tmp_path / "audit")]  # not runs/ of the checkout
    assert cli([*argv, "--variant", "honest", "--variant", "peek_next_close"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "peek_next_close (LEAKED)" in out and "rows marked LEAKED used the future" in out
    assert cli([*argv, "--variant", "crystal_ball"], monkeypatch) == 2
    assert "unknown audit variant(s) crystal_ball" in error_line(capsys)
    with pytest.raises(ConfigError):
        run_audit(load_config(MOMENTUM), tmp_path, ["crystal_ball"])


def test_scaler_end_fits_the_scalers_on_the_test_weeks_too() -> None:
    """The scaler_full leak: the scaler is the one fitted on every window, test weeks included."""
    from models.forecaster import train
    from models.windows import fit_scaler, make_windows
    from tests.model_data import TRAIN_END, WEEKS, tiny, walk_closes

    closes = walk_closes()[["AAA"]]
    honest, _ = train(closes, tiny(max_epochs=1), TRAIN_END)
    leaky, report = train(closes, tiny(max_epochs=1), TRAIN_END, scaler_end=WEEKS[-1])
    every = make_windows(closes["AAA"], 8)
    assert leaky.scalers["AAA"] == fit_scaler("window", every.inputs, every.target, "AAA")
    assert leaky.scalers["AAA"] != honest.scalers["AAA"]
    assert report.splits["AAA"]["test"]["first"] == WEEKS[80].date().isoformat()  # as honest


def test_validate_through_chooses_the_epoch_on_the_test_weeks() -> None:
    from models.forecaster import train
    from tests.model_data import TRAIN_END, WEEKS, tiny, walk_closes

    closes = walk_closes()[["AAA"]]
    _, honest = train(closes, tiny(max_epochs=1), TRAIN_END)
    _, report = train(closes, tiny(max_epochs=1), TRAIN_END, validate_through=WEEKS[90])
    split = report.splits["AAA"]
    assert split["validation"] == {"n": 11, "first": "2020-07-17", "last": "2020-09-25"}
    assert (
        split["train"]["n"]
        == honest.splits["AAA"]["train"]["n"] + (honest.splits["AAA"]["validation"]["n"])
    )  # every seen window is trained on


def test_model_leaks_run_on_the_lstm_strategy_and_are_labelled(tmp_path: Path) -> None:
    from tests.conftest import PAPER_CONFIG, PAPER_FAST

    sets = [*PAPER_FAST, "data.tickers=AAPL,MSFT,PEP", *YEAR[:2], "report.baselines="]
    cfg = load_config(PAPER_CONFIG, sets)
    lines: list[str] = []
    nets: list[str] = []

    def trained(event: TrainEvent) -> None:
        if event.result is not None:
            nets.append(event.key)

    table, results = run_audit(
        cfg,
        tmp_path,
        ["honest", "scaler_full", "early_stop_on_test"],
        train_progress=trained,
        note=lines.append,
    )
    assert list(table["variant"]) == ["honest", "scaler_full", "early_stop_on_test"]
    # A line per variant and per model, and every network's end reported.
    leaky = [line for line in lines if f"({LEAKED}: " in line and line.startswith("model ")]
    n = len(results["honest"].models["versions"])
    assert [line.split(" on data")[0] for line in leaky] == [
        f"model {k}/{n}: training {cfg.model.name} ({LEAKED}: {variant})"
        for variant in ("scaler_full", "early_stop_on_test")
        for k in range(1, n + 1)
    ]
    assert "variant 3/3 early_stop_on_test (LEAKED) ..." in lines
    trainings = [line for line in lines if line.startswith("model ") and ": training " in line]
    assert len(trainings) == 3 * n  # the honest models are new to this workspace too
    assert len(nets) == len(trainings) * len(set(nets)) and set(nets) == {"AAPL", "MSFT", "PEP"}
    for variant in ("scaler_full", "early_stop_on_test"):
        assert results[variant].summary.strategy_name == f"lstm_signal [{LEAKED}: {variant}]"
        assert table.set_index("variant").loc[variant, "weeks"] == results["honest"].summary.weeks
    # Pinned to a registered version, the walk-forward leaks have no models of their own.
    pinned = load_config(PAPER_CONFIG, [*sets, "model.version=paper-small/1"])
    notes = run_audit(pinned, tmp_path, ["scaler_full"])[0]
    assert "pins model.version" in notes.loc[0, "note"]


# --- progress, the audit's folder and resuming ------------------------------------------------

TWO = ["honest", "peek_next_close"]
PEEK_BACKTEST = f"backtest momentum [{LEAKED}: peek_next_close]"


class Interrupting:
    """Phases (as :class:`simulator.clikit.Reporter.phase`) that record each phase's name and
    press Ctrl-C when ``stop`` starts."""

    def __init__(self, stop: str = "") -> None:
        self.stop = stop
        self.names: list[str] = []

    def __call__(self, name: str) -> Callable[[int, int], None]:
        self.names.append(name)
        if name == self.stop:
            raise KeyboardInterrupt
        return lambda _done, _total: None


def test_an_interrupted_audit_keeps_its_finished_variant_and_resumes(tmp_path: Path) -> None:
    cfg = load_config(MOMENTUM, YEAR)
    out = tmp_path / "audit"
    stopped = Interrupting(PEEK_BACKTEST)
    folder = AuditFolder.open(out)
    with pytest.raises(KeyboardInterrupt):
        run_audit(cfg, tmp_path, TWO, folder=folder, progress=stopped)
    assert folder.kept == ["honest"]
    assert stopped.names == ["1/N", "backtest momentum", PEEK_BACKTEST]
    honest = out / "variants" / "honest.json"
    assert [p.name for p in (out / "variants").iterdir()] == ["honest.json"]  # no temp file
    stamp = honest.stat().st_mtime_ns
    kept = json.loads(honest.read_text())["row"]

    lines: list[str] = []
    again = Interrupting()
    table, results = run_audit(
        cfg, tmp_path, TWO, folder=AuditFolder.open(out), progress=again, note=lines.append
    )
    assert list(results) == ["peek_next_close"]  # honest was not run again
    assert again.names == ["1/N", PEEK_BACKTEST]  # nor its engine run
    assert honest.stat().st_mtime_ns == stamp
    assert "1 of 2 variants were done before (honest); resuming" in lines
    assert table.loc[0].to_dict() == kept
    fresh = run_audit(cfg, tmp_path, ["honest"])[0]
    assert table["total_return"].tolist()[0] == fresh["total_return"].tolist()[0]
    doc = json.loads((out / "audit.json").read_text())
    assert [r["variant"] for r in doc["variants"]] == TWO

    # Done: the same run again runs nothing.
    lines.clear()
    _table, results = run_audit(cfg, tmp_path, TWO, folder=AuditFolder.open(out), note=lines.append)
    assert results == {} and "2 of 2 variants were done before: nothing to run" in lines


def test_a_changed_config_or_data_runs_the_variant_again(tmp_path: Path) -> None:
    cfg = load_config(MOMENTUM, YEAR)
    out = tmp_path / "audit"
    run_audit(cfg, tmp_path, ["honest"], folder=AuditFolder.open(out))
    first = json.loads((out / "variants" / "honest.json").read_text())
    cheaper = load_config(MOMENTUM, [*YEAR, "backtest.commission=0.001"])
    _table, results = run_audit(cheaper, tmp_path, ["honest"], folder=AuditFolder.open(out))
    assert list(results) == ["honest"]  # run again, not resumed
    second = json.loads((out / "variants" / "honest.json").read_text())
    assert second["key"] != first["key"]
    assert (
        second["row"]["total_return"] == results["honest"].summary.series["strategy"].total_return
    )
    # One close changed: another data digest, so another key.
    weekly = Session.open(cfg, tmp_path).weekly
    bars = dict(weekly.bars)
    ticker = weekly.tickers[0]
    moved = bars[ticker].copy()
    moved.loc[moved.index[-1], "close"] = float(moved["close"].iloc[-1]) + 0.01
    bars[ticker] = moved
    assert run_key(cfg, dataclasses.replace(weekly, bars=bars)) != run_key(cfg, weekly)
    assert run_key(cfg, weekly) == run_key(load_config(MOMENTUM, YEAR), weekly)
    assert variant_key(run_key(cfg, weekly), "honest") != variant_key(
        run_key(cfg, weekly), "peek_next_close"
    )


def test_the_default_folder_is_named_by_the_config_and_its_overrides() -> None:
    a = default_audit_dir(MOMENTUM, load_config(MOMENTUM, YEAR))
    assert a == default_audit_dir(MOMENTUM, load_config(MOMENTUM, YEAR))
    assert a.parent == Path("runs") and a.name.startswith("audit-momentum-")
    assert a != default_audit_dir(MOMENTUM, load_config(MOMENTUM, YEAR[:2]))


def test_an_audit_folder_that_holds_something_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert cli(["audit", str(MOMENTUM), "--out", str(tmp_path)], monkeypatch) == 2
    assert error_line(capsys) == (
        f"error: {tmp_path} exists and is not an audit folder (no variants/); choose another --out"
    )
    assert not (tmp_path / "variants").exists()  # nothing made


def test_the_audit_speaks_first_says_ctrl_c_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a log (stderr is not a terminal here) the first line comes before any work; Ctrl-C
    during the second variant keeps the first, says so in one line and exits 130; the same
    command then resumes."""
    out = tmp_path / "audit"
    argv = ["audit", str(MOMENTUM), *sets(YEAR), "--variant", "honest"]
    argv += ["--variant", "peek_next_close", "--out", str(out)]

    class CtrlC(Reporter):
        def phase(self, name: str, unit: str = "weeks") -> Callable[[int, int], None]:
            if name == PEEK_BACKTEST:
                raise KeyboardInterrupt
            return super().phase(name, unit)

    monkeypatch.setattr("simulator.cli.Reporter", CtrlC)
    assert cli(argv, monkeypatch) == 130
    err = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[:4] == [
        f"leak audit of momentum.toml: 2 variant(s), each kept in {out} when it ends",
        "loading data ...",
        err[2],
        "1/N ...",
    ]
    assert err[2].startswith("data: 12 tickers, ")
    assert err.index("variant 1/2 honest ...") == 5
    assert err[-1] == (
        f"interrupted: finished variants kept in {out} (honest); run the same command to resume"
    )

    monkeypatch.setattr("simulator.cli.Reporter", Reporter)
    assert cli(argv, monkeypatch) == 0
    captured = capsys.readouterr()
    assert "1 of 2 variants were done before (honest); resuming" in captured.err.splitlines()
    assert "variant 1/2 honest ..." not in captured.err
    assert "1 variant(s) run now, 1 were done before" in captured.err
    assert "peek_next_close (LEAKED)" in captured.out and f"audit folder: {out}" in captured.out


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_log_hears_the_audit_at_once_and_a_real_ctrl_c_stops_it(tmp_path: Path) -> None:
    """The issue's "done when": a log's first line comes within 30 seconds of the start (before
    torch loads), and SIGINT there exits 130 with one line and no traceback."""
    out = tmp_path / "audit"
    argv = [sys.executable, "-m", "simulator.cli", "audit", str(MOMENTUM), *sets(YEAR)]
    started = time.monotonic()
    with subprocess.Popen(
        [*argv, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,  # the example's rule is imported from there
        start_new_session=True,
        # As a terminal's foreground command gets it: a suite started in the background by a
        # shell without job control (`make test &`, a CI runner) hands its children SIGINT
        # ignored, and a Python started so never raises KeyboardInterrupt.
        preexec_fn=_sigint_default,
    ) as proc:
        assert proc.stderr is not None
        try:
            first = proc.stderr.readline()
            waited = time.monotonic() - started
            lines = [first]
            while lines[-1] and lines[-1] != "variant 1/2 honest ...\n":  # working
                lines.append(proc.stderr.readline())
            proc.send_signal(signal.SIGINT)
            rest = proc.stderr.read()
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert first == f"leak audit of momentum.toml: 5 variant(s), each kept in {out} when it ends\n"
    assert waited < 30
    assert rc == 130, rest
    assert "Traceback" not in rest
    kept = sorted(p.stem for p in (out / "variants").iterdir())
    assert kept in ([], ["honest"])  # the signal may come as the first variant ends
    assert rest.splitlines()[-1] == (
        f"interrupted: finished variants kept in {out} ({', '.join(kept) or 'none yet'}); run "
        "the same command to resume"
    )


# --- review of issue 26: a moved alias, failed writes, two audits at once --------------------


@pytest.mark.cpu_seconds(360)
def test_a_moved_alias_runs_the_variant_again(tmp_path: Path) -> None:
    """The key held the config's text ``paper-small@champion``, so once the alias moved to
    another version the audit resumed rows made with the old model. It now holds the version
    the alias names and its files' digests."""
    small = [*PAPER_FAST, "data.tickers=AAPL,MSFT,PEP", *YEAR[:2], "report.baselines="]
    ws = tmp_path / "ws"
    first = train_from_config(load_config(PAPER_CONFIG, small), ws)[2]
    second = train_from_config(load_config(PAPER_CONFIG, [*small, "model.seed=1"]), ws)[2]
    assert first.tags["weights_sha256"] != second.tags["weights_sha256"]
    registry = open_registry(ws)
    registry.set_alias("paper-small", first.version, "champion")
    cfg = load_config(PAPER_CONFIG, [*small, "model.version=paper-small@champion"])
    session = Session.open(cfg, ws)
    assert pinned_model(session) == (
        f"paper-small/1 {first.tags['weights_sha256']} {first.tags['manifest_sha256']}"
    )
    out = tmp_path / "audit"
    _table, results = run_audit(session, ws, ["honest"], folder=AuditFolder.open(out))
    assert [v["version"] for v in results["honest"].models["versions"]] == ["paper-small/1"]
    honest = out / "variants" / "honest.json"
    before = json.loads(honest.read_text())["key"]
    _table, results = run_audit(session, ws, ["honest"], folder=AuditFolder.open(out))
    assert results == {}  # the alias has not moved: resumed

    registry.set_alias("paper-small", second.version, "champion")
    assert pinned_model(session).startswith(f"paper-small/2 {second.tags['weights_sha256']} ")
    lines: list[str] = []
    _table, results = run_audit(
        session, ws, ["honest"], folder=AuditFolder.open(out), note=lines.append
    )
    assert list(results) == ["honest"]  # run again, with the version the alias names now
    assert [v["version"] for v in results["honest"].models["versions"]] == ["paper-small/2"]
    assert not [line for line in lines if "were done before" in line]
    assert json.loads(honest.read_text())["key"] != before
    # Nothing pinned: no registry is asked, and the key is the one of before this fix.
    assert pinned_model(Session.open(load_config(MOMENTUM, YEAR), ws)) == ""


def hold_lock(folder: Path) -> int:
    """Take ``folder``'s audit lock as another process's audit would (its own descriptor)."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_second_audit_of_the_same_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit"
    argv = ["audit", str(MOMENTUM), *sets(YEAR), "--variant", "honest", "--out", str(out)]
    assert cli(argv, monkeypatch) == 0
    capsys.readouterr()
    kept = out / "variants" / "honest.json"
    stamp = kept.stat().st_mtime_ns
    held = hold_lock(out)
    try:
        assert cli([*argv, "--fresh"], monkeypatch) == 2
        assert error_line(capsys) == (
            f"error: audit folder {out} is in use by another foliosim audit; wait for it or "
            "use --out"
        )
        assert kept.stat().st_mtime_ns == stamp  # --fresh cleared nothing of the other's
        with pytest.raises(RunDirError, match="is in use by another foliosim audit"):
            run_audit(
                load_config(MOMENTUM, YEAR), tmp_path, ["honest"], folder=AuditFolder.open(out)
            )
    finally:
        os.close(held)
    # Free again (and the command's own lock was let go when it ended): it resumes.
    assert cli(argv, monkeypatch) == 0
    assert "1 of 1 variants were done before: nothing to run" in capsys.readouterr().err
    assert kept.stat().st_mtime_ns == stamp
    fd = hold_lock(out)  # nobody holds it now
    os.close(fd)


def test_a_failed_write_is_one_line_and_keeps_the_finished_variants(tmp_path: Path) -> None:
    out = tmp_path / "audit"
    folder = AuditFolder.open(out)
    row = {"variant": "honest", "leaked": False, "total_return": 0.125, "note": ""}
    folder.put("honest", "k1", row, 1.0)
    (out / "audit.json").mkdir()  # something in the table's place: the rename fails
    with pytest.raises(RunDirError) as caught:
        folder.finish([row])
    assert str(caught.value) == (
        f"cannot write {out / 'audit.json'}: Is a directory; finished variants are kept "
        f"(honest): fix audit.json's place in {out}, then run the same command to resume (or "
        "choose another --out)"
    )
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "variants"]  # no temp file
    assert json.loads((out / "variants" / "honest.json").read_text())["row"] == row
    shutil.rmtree(out)  # the folder removed while the audit ran
    with pytest.raises(RunDirError, match=f"check that {out} is still there, then run the same"):
        folder.put("peek_next_close", "k2", row, 1.0)


#: Run the command twice on a 64 KiB tmpfs: first full (a filler takes every page), then with
#: the filler removed; rc, stdout and stderr of each run and the kept variants go to LOG.
FULL_DISK = """set -u
DISK=$1; LOG=$2; shift 2
mount -t tmpfs -o size=64k tmpfs "$DISK" || exit 90
dd if=/dev/zero of="$DISK/filler" bs=4k 2>/dev/null
"$@" --out "$DISK/audit" > "$LOG/1.out" 2> "$LOG/1.err"; echo $? > "$LOG/1.rc"
ls -A "$DISK/audit/variants" > "$LOG/1.kept"
rm "$DISK/filler"
"$@" --out "$DISK/audit" > "$LOG/2.out" 2> "$LOG/2.err"; echo $? > "$LOG/2.rc"
ls -A "$DISK/audit/variants" > "$LOG/2.kept"
"""


def test_a_full_disk_is_one_line_and_the_same_command_resumes(tmp_path: Path) -> None:
    """Issue 26's review: a full disk ended the audit with an OSError traceback. A real full
    disk (a tmpfs in a mount namespace of the test's own) now gets one line and exit 2, and
    the same command, once space is freed, runs the audit to its end."""
    own = ["unshare", "--mount", "--propagation", "private"]
    prefix = own if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: no mount namespace for a full disk of the test's own")
    disk, log = tmp_path / "disk", tmp_path / "log"
    disk.mkdir()
    log.mkdir()
    script = tmp_path / "full.sh"
    script.write_text(FULL_DISK)
    cmd = [sys.executable, "-m", "simulator.cli", "audit", str(MOMENTUM), *sets(YEAR)]
    cmd += ["--variant", "honest"]
    done = subprocess.run(
        [*prefix, "bash", str(script), str(disk), str(log), *cmd],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode == 90 or not (log / "1.rc").exists():
        pytest.skip(f"no tmpfs can be mounted here: {done.stderr.strip()[:200]}")
    target = disk / "audit"
    rc1, err1 = int((log / "1.rc").read_text()), (log / "1.err").read_text()
    assert rc1 == 2, err1
    assert "Traceback" not in err1
    assert err1.splitlines()[-1] == (
        f"error: cannot write {target / 'variants' / 'honest.json'}: "
        f"{os.strerror(errno.ENOSPC)}; free space on the disk of {target}, then run the same "
        "command to resume (or choose another --out)"
    )
    assert (log / "1.kept").read_text() == ""  # no half file, no temporary file
    rc2, err2 = int((log / "2.rc").read_text()), (log / "2.err").read_text()
    assert rc2 == 0, err2
    assert "variant 1/1 honest ..." in err2.splitlines()
    assert (log / "2.kept").read_text() == "honest.json\n"
