"""Hostile inputs and real faults against sweeps (issue 24): a disk that fills up, an axis of
a hundred million seeds, stale Ray session files, a sweep killed with SIGKILL, and a cluster
started with ``ray start`` that wants Ray's token.

Each runs ``foliosim sweep`` as a user does, in a subprocess, with its own Ray temp folder
(``RAY_TMPDIR``): the Ray processes a test starts are found by that folder in their environment
and ended by their ids. ``ray stop`` is never run: it ends every Ray process of the user on
the machine, those of other sweeps and test runs included.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pytest

from simulator.errors import ConfigError
from simulator.sweep import MAX_TRIALS, Axes, environment_cause, parse_seeds
from simulator.sweep_report import sweep_stats, write_sweep_html
from tests.conftest import PAPER_CONFIG, REPO, require_paper12
from tests.helpers import CSV, cli, error_line, sets

#: 1/N on paper12, no baselines: a trial takes a second.
EQUAL = [*CSV, "backtest.strategy=equal_weight", "report.baselines=", "data.start=2015-01-01"]
#: Four trials: two configs over two years (PBO is defined on them).
FOUR = ["--grid", "strategy.max_weight=0.05,0.2", "--periods", "2021,2022"]
SWEEP = [sys.executable, "-m", "simulator.cli", "sweep", str(PAPER_CONFIG), *sets(EQUAL)]
#: What Ray reads of the environment and a test must not inherit (an earlier ray.init in this
#: process sets RAY_AUTH_MODE=token, for one).
RAY_VARS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


# --- Ray processes of one test ---------------------------------------------------------------


def ray_pids(tmpdir: str) -> list[int]:
    """The processes whose environment names ``tmpdir`` as RAY_TMPDIR: those a test started
    (a worker's command line is rewritten to ``ray::...``, its environment is not)."""
    needle = f"RAY_TMPDIR={tmpdir}\0".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if needle in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:  # gone, or not ours to read
                continue
    return found


def end_processes(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL what is left after ``grace`` seconds, by id."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    """A short, private RAY_TMPDIR (Ray's socket paths must stay under 108 bytes); every Ray
    process that names it is ended afterwards."""
    tmpdir = tempfile.mkdtemp(prefix="fs", dir="/tmp")
    yield tmpdir
    end_processes(ray_pids(tmpdir))
    shutil.rmtree(tmpdir, ignore_errors=True)


def sweep_env(ray_tmp: str, workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in RAY_VARS}
    env.update(FOLIOSIM_WORKSPACE=str(workspace), RAY_TMPDIR=ray_tmp, MPLBACKEND="Agg")
    env.update(extra)
    return env


def one_error_line(stderr: str) -> str:
    """The one ``error:`` line a failed command ends with: no traceback, no Ray warnings."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert lines and lines[-1].startswith("error: "), stderr
    assert sum(line.startswith("error") for line in lines) == 1, stderr
    # Ray's own log lines ("[2026-... W ...] gcs_client.cc: ...") and warnings: none
    assert not [line for line in lines if line.startswith("[") or "WARNING" in line], stderr
    return lines[-1]


def rows(sweep: Path) -> dict[str, dict[str, object]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((sweep / "trials").glob("t*.json"))}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# --- 1. a full disk ------------------------------------------------------------------------

#: Mounts a tmpfs of SMALL bytes on DISK, sweeps into it, then grows it (space freed) and runs
#: the same command again; both runs' outputs and directories are kept under LOG.
FULL_DISK = """set -u
DISK=$1; LOG=$2; SMALL=$3; shift 3
mount -t tmpfs -o size=$SMALL tmpfs "$DISK" || exit 90
"$@" --out "$DISK/sweep" > "$LOG/1.out" 2> "$LOG/1.err"; echo $? > "$LOG/1.rc"
cp -a "$DISK/sweep" "$LOG/first"
mount -o remount,size=64m "$DISK"
"$@" --out "$DISK/sweep" > "$LOG/2.out" 2> "$LOG/2.err"; echo $? > "$LOG/2.rc"
cp -a "$DISK/sweep" "$LOG/second"
"""


def private_mount() -> list[str] | None:
    """A command prefix that runs its command in a mount namespace of its own where it may
    mount a tmpfs (root: ``unshare --mount``; otherwise a user namespace), or None where the
    system allows neither."""
    own = ["unshare", "--mount", "--propagation", "private"]
    prefix = own if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    if shutil.which("unshare") is None or os.environ.get("FOLIOSIM_TEST_INJECT_ENOSPC"):
        return None  # (the variable tries the injection where a mount would work)
    with tempfile.TemporaryDirectory() as probe:
        tried = subprocess.run(
            [*prefix, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
            capture_output=True,
            check=False,
        )
    return prefix if tried.returncode == 0 else None


#: Where no mount namespace can be made (a CI runner that forbids user namespaces): the same
#: fault injected at the file-system boundary of every process of the sweep (driver and Ray
#: workers import sitecustomize from PYTHONPATH): writes into a trial's folder fail with
#: ENOSPC while DISK.full exists, as on a disk with room for the sweep's rows only.
INJECT_ENOSPC = """import builtins, errno, io, os
_DISK = os.environ.get("FOLIOSIM_TEST_FULL_DISK", "")
def _full(path, writing):
    if not (_DISK and writing and os.path.exists(_DISK + ".full")):
        return False
    try:
        rel = os.path.relpath(os.path.abspath(os.fsdecode(path)), os.path.join(_DISK, "trials"))
    except (TypeError, ValueError):
        return False
    return not rel.startswith("..") and os.sep in rel
def _fail(path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(path))
_os_open, _open = os.open, builtins.open
def _guard_os_open(path, flags, *a, **k):
    if _full(path, flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
        _fail(path)
    return _os_open(path, flags, *a, **k)
def _guard_open(file, mode="r", *a, **k):
    if isinstance(file, (str, bytes, os.PathLike)) and _full(file, set(mode) & set("wax+")):
        _fail(file)
    return _open(file, mode, *a, **k)
os.open, builtins.open, io.open = _guard_os_open, _guard_open, _guard_open
"""


@pytest.mark.slow
@pytest.mark.cpu_seconds(400)
def test_a_full_disk_leaves_trials_to_retry_and_one_error_line(
    tmp_path: Path, ray_tmp: str
) -> None:
    """Issue 24: trials that hit ENOSPC were recorded as failed for good, the driver died with
    a traceback and a re-run after freeing space never retried them (PBO n/a). Now they are
    ``retry`` rows, the driver ends with one line naming the --out to resume, and the re-run
    runs exactly the trials left, to a complete table."""
    require_paper12()
    disk, log = tmp_path / "disk", tmp_path / "log"
    disk.mkdir()
    log.mkdir()
    env = sweep_env(ray_tmp, tmp_path / "ws")
    cmd = [*SWEEP, *FOUR, "--cpus", "1"]
    prefix = private_mount()
    if prefix is not None:  # a real full disk: a 224 KiB tmpfs holds one trial's run folder
        script = tmp_path / "full.sh"
        script.write_text(FULL_DISK)
        subprocess.run(
            [*prefix, "bash", str(script), str(disk), str(log), "224k", *cmd],
            cwd=REPO,
            env=env,
            check=True,
            timeout=900,
        )
        first, second = log / "first", log / "second"
        run = [(log / f"{n}.rc", log / f"{n}.out", log / f"{n}.err") for n in (1, 2)]
        outputs = [(int(rc.read_text()), o.read_text(), e.read_text()) for rc, o, e in run]
        target = disk / "sweep"
    else:  # no namespace to mount in: the same ENOSPC, injected at every write of a trial
        inject = tmp_path / "inject"
        inject.mkdir()
        (inject / "sitecustomize.py").write_text(INJECT_ENOSPC)
        target = disk / "sweep"
        env.update(
            FOLIOSIM_TEST_FULL_DISK=str(target),
            PYTHONPATH=os.pathsep.join([str(inject), env.get("PYTHONPATH", "")]),
        )
        Path(f"{target}.full").touch()
        outputs = []
        for n in (1, 2):
            if n == 2:
                Path(f"{target}.full").unlink()  # space freed
            proc = subprocess.run(
                [*cmd, "--out", str(target)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            outputs.append((proc.returncode, proc.stdout, proc.stderr))
            shutil.copytree(target, log / ("first" if n == 1 else "second"))
        first, second = log / "first", log / "second"

    (rc1, _, err1), (rc2, out2, err2) = outputs
    assert rc1 == 2, err1
    line = one_error_line(err1)
    assert "disk full" in line and os.strerror(errno.ENOSPC) in line, line
    assert f"--out {target}" in line, line
    before = rows(first)
    assert not [r for r in before.values() if r["status"] == "failed"], before
    left = [
        t for t in ("t0001", "t0002", "t0003", "t0004") if before.get(t, {}).get("status") != "done"
    ]
    assert left, "the disk never filled up"
    assert all(before[t]["status"] == "retry" for t in left if t in before), before

    assert rc2 == 0, err2
    assert f"ran {len(left)} trial(s) now, {4 - len(left)} were done before" in out2, out2
    table = pd.read_csv(second / "sweep.csv")
    assert (table["status"] == "done").all(), table[["trial", "status", "error"]]
    assert "probability of backtest overfitting: n/a" not in out2, out2
    after = rows(second)
    for trial, row in before.items():  # what was done is kept, not run again
        if row["status"] == "done":
            assert after[trial] == row


def test_environment_causes_are_told_from_a_trials_own_errors() -> None:
    """A full disk or quota (also wrapped, or as SQLite words it) and memory are the
    environment's; a bad value is the trial's."""
    assert environment_cause(OSError(errno.EDQUOT, "Disk quota exceeded")) == "disk full"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise ValueError("could not write the run") from None
    except ValueError as wrapped:
        assert environment_cause(wrapped) == "disk full"  # found along __context__
    assert environment_cause(RuntimeError("(sqlite3) database or disk is full")) == "disk full"
    assert environment_cause(MemoryError()) == "out of memory"
    assert environment_cause(PermissionError(errno.EACCES, "Permission denied")) is None
    assert environment_cause(ConfigError("strategy.max_weight: must be <= 1")) is None


# --- 2. an axis of a hundred million seeds ---------------------------------------------------


def test_a_hundred_million_seeds_is_one_line_at_once(tmp_path: Path, ray_tmp: str) -> None:
    """Issue 24: ``--seeds 0-99999999`` was expanded before anything ran (10 GB after 30 s).
    Now it is counted, not expanded: one line, at once, in little memory (the child may not
    take more than 1.5 GB of data, so the old code fails here with a MemoryError)."""
    require_paper12()
    limit = 1536 * 2**20

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    clock = time.monotonic()
    proc = subprocess.run(
        [*SWEEP, "--seeds", "0-99999999", "--out", str(tmp_path / "s")],
        cwd=REPO,
        env=sweep_env(ray_tmp, tmp_path / "ws"),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        preexec_fn=cap,
    )
    assert proc.returncode == 2, proc.stderr
    assert "names 100,000,000 seeds or more, over the 100,000 trials" in one_error_line(proc.stderr)
    assert time.monotonic() - clock < 60
    assert not (tmp_path / "s").exists()


def test_the_product_of_the_axes_is_bounded_without_expanding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each axis may be allowed and their product not: 1,000 seeds x 101 grid values x 2
    periods is one line before Ray starts; an axis of exactly 100,000 seeds is allowed."""
    values = ",".join(f"{0.1 + i / 1000:.3f}" for i in range(101))
    argv = ["sweep", str(PAPER_CONFIG), *sets(EQUAL), "--out", str(tmp_path / "s")]
    argv += ["--seeds", "0-999", "--grid", f"strategy.max_weight={values}"]
    assert cli([*argv, "--periods", "2021,2022"], monkeypatch) == 2
    line = error_line(capsys)
    assert (
        "the sweep has 202,000 trials (1,000 seeds x 101 values of strategy.max_weight x " in line
    )
    assert "2 periods), over the 100,000 a sweep may run" in line
    assert not (tmp_path / "s").exists()
    assert len(parse_seeds(f"0-{MAX_TRIALS - 1}")) == MAX_TRIALS
    assert Axes(seeds=parse_seeds(f"0-{MAX_TRIALS - 1}")).count == MAX_TRIALS
    with pytest.raises(ConfigError, match="names a seed twice"):
        parse_seeds("0-9,5")
    with pytest.raises(ConfigError, match="below 10"):
        parse_seeds("9" * 5000)  # a number Python would refuse to parse: one line too


# --- 3. --address auto with a stopped cluster's files ----------------------------------------


def test_address_auto_with_leftover_session_files_is_one_line(
    tmp_path: Path,
    ray_tmp: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 24: ``--address auto`` where a stopped ``ray start`` left its session files ended
    in a Ray traceback. Now: one line, what is wrong and what to do, before Ray starts."""
    for name in RAY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    argv = ["sweep", str(PAPER_CONFIG), *sets(EQUAL), "--periods", "2021", "--address", "auto"]
    argv += ["--out", str(tmp_path / "s")]
    clock = time.monotonic()
    assert cli(argv, monkeypatch) == 2
    line = error_line(capsys)
    assert "--address auto: no Ray cluster was started on this machine" in line
    assert "ray start --head" in line and "drop --address" in line

    # What `ray start --head` leaves after its processes died: the address file and a session.
    (port,) = free_ports(1)
    session = Path(ray_tmp) / "ray" / "session_2026-01-01_00-00-00_000000_1"
    (session / "sockets").mkdir(parents=True)
    (Path(ray_tmp) / "ray" / "session_latest").symlink_to(session)
    (Path(ray_tmp) / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    assert cli(argv, monkeypatch) == 2
    line = error_line(capsys)
    assert f"the Ray cluster last started on this machine (127.0.0.1:{port}" in line, line
    assert "is not running, only its session files are left" in line
    assert "start a cluster with `ray start --head`, or drop --address" in line
    assert time.monotonic() - clock < 30
    assert not (tmp_path / "s").exists()


# --- 4. a sweep killed with SIGKILL ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.cpu_seconds(400)
def test_a_sweep_killed_with_sigkill_resumes_at_once_beside_its_leftovers(
    tmp_path: Path, ray_tmp: str
) -> None:
    """Issue 24: after ``kill -9`` of a sweep its Ray processes linger a minute or two; the
    next sweep must not depend on them. Killed after its first row, the same command with the
    same --out, run at once, completes the table; ``sweep --help`` says what lingers."""
    require_paper12()
    out = tmp_path / "sweep"
    env = sweep_env(ray_tmp, tmp_path / "ws")
    cmd = [*SWEEP, "--periods", "2019,2020,2021,2022", "--cpus", "1", "--out", str(out)]
    victim = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not (out.is_dir() and rows(out)):
        assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
        assert time.monotonic() < deadline, "no trial ended in 300 s"
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    if victim.stderr is not None:
        victim.stderr.close()
    done = [t for t, r in rows(out).items() if r["status"] == "done"]

    again = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert again.returncode == 0, again.stderr
    ran = 4 - len(done)
    assert f"ran {ran} trial(s) now, {len(done)} were done before" in again.stdout
    table = pd.read_csv(out / "sweep.csv")
    assert list(table["status"]) == ["done"] * 4

    helped = subprocess.run(
        [*SWEEP[:4], "--help"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    text = " ".join(helped.stdout.split())
    assert "To resume a stopped sweep, run the same command again" in text
    assert "may linger for a minute or two. They are harmless" in text
    assert "`ray stop` ends them at once" in text
    docs = " ".join((REPO / "docs" / "sweeps.md").read_text(encoding="utf-8").split())
    assert "`ray stop`" in docs and "linger" in docs


# --- 5. a cluster started with `ray start`, with token authentication -------------------------


def ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``ray start ... --block``: the node lives as long as this process (ended by its id)."""
    ray = str(Path(sys.executable).with_name("ray"))
    with log.open("wb") as sink:
        return subprocess.Popen(
            [ray, "start", *args, "--block", "--disable-usage-stats"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def node_ports(taken: Sequence[int] = ()) -> list[str]:
    """The ports of one node, each free, so that nothing collides with other Ray users; its
    41 worker ports hold none of the node's other ports nor ``taken`` (Ray refuses a port
    used twice: a random worker range once covered the client server's port)."""
    p = free_ports(6)
    low = free_ports(1)[0]
    while any(low <= q <= low + 40 for q in (*p, *taken)):
        low = free_ports(1)[0]
    return [
        f"--node-manager-port={p[0]}",
        f"--object-manager-port={p[1]}",
        f"--metrics-export-port={p[2]}",
        f"--dashboard-agent-listen-port={p[3]}",
        f"--dashboard-agent-grpc-port={p[4]}",
        f"--runtime-env-agent-port={p[5]}",
        f"--min-worker-port={low}",
        f"--max-worker-port={low + 40}",
    ]


def alive_nodes(address: str, env: dict[str, str]) -> int:
    probe = "import ray; ray.init(address=%r); print(sum(n['Alive'] for n in ray.nodes()))"
    proc = subprocess.run(
        [sys.executable, "-c", probe % address],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return int(proc.stdout.strip() or 0) if proc.returncode == 0 else 0


@pytest.mark.slow
@pytest.mark.cpu_seconds(600)
def test_a_ray_start_cluster_with_token_auth(tmp_path: Path, ray_tmp: str) -> None:
    """Issue 24: a head and a worker started with ``ray start`` (here with RAY_AUTH_MODE=token,
    as Ray 2.60 does by itself once ~/.ray/auth_token exists). A sweep without the token
    printed a stream of InvalidAuthToken warnings and blamed the address; now it is one line
    saying how to pass the token, a wrong token another, and with the token the 4 trials run on
    both nodes."""
    require_paper12()
    token = secrets.token_hex(16)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env = sweep_env(ray_tmp, tmp_path / "ws")
    gcs, client, dashboard = free_ports(3)
    head_args = [
        "--head",
        f"--port={gcs}",
        f"--ray-client-server-port={client}",
        f"--dashboard-port={dashboard}",
        "--include-dashboard=false",
        "--num-cpus=1",
        *node_ports([gcs, client, dashboard]),
    ]
    head = ray_start(head_args, {**env, **auth}, tmp_path / "head.log")
    nodes = [head]
    try:
        address_file = Path(ray_tmp) / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + 180
        while not address_file.is_file():
            assert head.poll() is None, (tmp_path / "head.log").read_text()
            assert time.monotonic() < deadline, "the head did not start in 180 s"
            time.sleep(0.5)
        address = address_file.read_text().strip()
        worker_args = [
            f"--address={address}",
            "--num-cpus=1",
            *node_ports([gcs, client, dashboard]),
        ]
        nodes.append(ray_start(worker_args, {**env, **auth}, tmp_path / "worker.log"))
        while alive_nodes(address, {**env, **auth}) < 2:
            assert nodes[1].poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline + 120, "the worker did not join in time"
            time.sleep(1)

        cmd = [*SWEEP, *FOUR, "--address", address]
        for extra, expected in [
            ({}, "uses token authentication and this process sent no token"),
            ({**auth, "RAY_AUTH_TOKEN": "0" * 32}, "refused this machine's token"),
        ]:
            clock = time.monotonic()
            proc = subprocess.run(
                [*cmd, "--out", str(tmp_path / "refused")],
                cwd=REPO,
                env={**env, **extra},
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            assert proc.returncode == 2, proc.stderr
            line = one_error_line(proc.stderr)
            assert expected in line, line
            assert "RAY_AUTH_MODE=token" in line and "ray get-auth-token" in line, line
            assert "InvalidAuthToken" not in proc.stderr
            assert time.monotonic() - clock < 60
            assert not (tmp_path / "refused").exists()

        out = tmp_path / "cluster"
        proc = subprocess.run(
            [*cmd, "--out", str(out)],
            cwd=REPO,
            env={**env, **auth},
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        done = rows(out)
        assert [r["status"] for r in done.values()] == ["done"] * 4
        assert len({r["node"] for r in done.values()}) == 2, done
    finally:
        end_processes([n.pid for n in reversed(nodes)], grace=30)
        for n in nodes:
            n.wait()


def test_sweep_html_counts_and_lists_the_trials_to_retry(tmp_path: Path) -> None:
    """A ``retry`` row is neither done nor failed: counted apart, listed with its cause, and
    not among the trials the deflated Sharpe ratio deflates for."""
    base = {"config": "base", "seed": 0, "period": "", "error": "", "weeks": 52, "skew": 0.0}
    figures = {"total_return": 0.1, "sharpe": 1.0, "kurtosis": 3.0}
    for series in ("equal_weight", "benchmark"):
        figures.update({f"{series}_total_return": 0.05, f"{series}_sharpe": 0.5})
    frame = pd.DataFrame(
        [
            {**base, **figures, "trial": "t0001", "status": "done"},
            {**base, **figures, "trial": "t0002", "status": "done", "sharpe": 2.0},
            {
                **base,
                "trial": "t0003",
                "status": "retry",
                "error": "disk full: OSError: [Errno 28]",
            },
            {**base, "trial": "t0004", "status": "failed", "error": "a bad value"},
        ]
    )
    stats = sweep_stats(frame)
    assert (stats.trials, stats.failed, stats.retry, stats.done) == (4, 1, 1, 2)
    text = " ".join(write_sweep_html(tmp_path, frame, tmp_path / "c.toml").read_text().split())
    assert "4 trials, 1 failed, 1 stopped by the environment" in text
    assert "<code>t0003</code> (retry): disk full: OSError: [Errno 28]" in text
    assert "what the best of 2 trials would reach by luck" in text


@pytest.mark.parametrize("text", ["[]", '"sweep"', "{not json", "null"])
def test_a_damaged_sweep_json_is_one_line_before_ray(
    tmp_path: Path,
    text: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Review of issue 26: a sweep.json that is valid JSON but not an object (``[]``) raised
    AttributeError on resume. Any damaged sweep.json is one line, exit 2, and left as it was."""
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text(text, encoding="utf-8")
    argv = ["sweep", str(PAPER_CONFIG), *sets(EQUAL), "--out", str(out), "--periods", "2022"]
    assert cli(argv, monkeypatch) == 2
    assert error_line(capsys) == f"error: {out / 'sweep.json'} is damaged; choose another --out"
    assert (out / "sweep.json").read_text(encoding="utf-8") == text
    assert sorted(p.name for p in out.iterdir()) == [".lock", "sweep.json"]
