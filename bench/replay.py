"""Paper-trading replay: seconds per replayed week (warm) and per one-week step as a new process.

Run ``python bench/replay.py`` (about 4 minutes on 2 cores, most of it training the 12
paper-preset LSTMs in the fresh workspace) or ``python bench/replay.py --quick`` (a smoke run:
the small preset with 3 epochs, fewer warm steps). ``--workspace DIR`` keeps the workspace (the
registry too, so a second run reuses the models); ``--model-preset small`` times the small
preset with its full epochs. In that workspace it opens paper accounts on
``examples/paper2023.toml`` with the CSV overrides (``--data``, default
``../shared/data/paper12`` relative to the repository), all pinned to the same model version,
fill at the close, and times:

1. **setup**: ``simulator.accounts.start`` of the accounts (the first one trains the models unless
   the registry holds them);
2. **warm**, in one process: ``simulator.stepping.step(weeks=1)`` called week after week (the
   first call of the process apart: it pays the step's lazy imports, torch among them), and one
   ``step(weeks=N)`` through the whole test year (seconds per week, and the marginal cost of a
   week beyond the fixed cost of a call);
3. **fresh process**: ``foliosim replay step --account NAME`` (the console script, one week,
   the caller's environment plus ``FOLIOSIM_WORKSPACE``) run ``--repeat`` times, each a new
   process that advances one week: median, min and max wall clock. Then where that time goes:
   interpreter start (``python -c pass``), ``foliosim --help`` (start and the CLI's imports), a
   fresh process that imports ``simulator.cli`` and steps in-process (interpreter start,
   imports, first step with its lazy imports, a later step, one step under cProfile split into
   data load, model load, engine, decisions and journal, and the interpreter's exit), and the
   imports of a fresh step under ``-X importtime`` (top packages and modules) with the heavy
   modules a step loads (``mlflow`` must not be).

Target (2 cores): a fresh one-week step under 3 s (median), most of it start-up. Every timed
run happens in a fresh subprocess (``--child``) so that no run warms imports for another. It is
a report, not a test: it exits 0 unless a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import cpu_model, machine_line, progress

#: Wall-clock stamp of this module's start: with the parent's stamps around a child it splits
#: the child's wall time into interpreter start, the timed work, and exit (teardown).
T_TOP = time.time()

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "examples" / "paper2023.toml"
DEFAULT_DATA = "../shared/data/paper12"
TARGET_S = 3.0
WARM_ACCOUNT, BATCH_ACCOUNT, FRESH_ACCOUNT = "bench-warm", "bench-batch", "bench-fresh"
ACCOUNTS = (WARM_ACCOUNT, BATCH_ACCOUNT, FRESH_ACCOUNT)
QUICK_WARM_WEEKS = 12
#: Modules whose presence after a step is reported; a step must not import mlflow.
HEAVY = ("torch", "mlflow", "sqlalchemy", "matplotlib", "quantstats", "backtrader", "pandas")
#: cProfile groups of a step: label -> source files (path fragments) entered from outside.
GROUPS = {
    "data load (simulator.data)": ("simulator/data/",),
    "model load (models.artifacts.read_version)": ("models/artifacts.py",),
    "engine (simulator.engine.run_engine, incl. the two below)": ("simulator/engine.py",),
    "  decisions (strategies.signal, predictions)": ("strategies/signal.py",),
    "journal (simulator.journal, incl. writes in the engine)": ("simulator/journal.py",),
}
IMPORT_HEADER = "import time:"


# --- children (each one a fresh process) ----------------------------------------------------


def overrides(data: str, preset: str, quick: bool) -> list[str]:
    """The ``--set`` items of every account: CSV data, and the preset unless the paper one."""
    sets = ["data.source=csv", f"data.path={data}"]
    if quick:
        return [*sets, "model.preset=small", "model.max_epochs=3", "model.name=paper2023-quick"]
    if preset != "paper":
        sets += [f"model.preset={preset}", f"model.name=paper2023-{preset}"]
    return sets


def child_setup(workspace: Path, sets: list[str]) -> dict[str, Any]:
    """Open the accounts (deleting earlier ones of the same names), all on one model version."""
    from simulator.accounts import journal_path, reset, start
    from simulator.config import load_config

    cfg = load_config(CONFIG, sets)
    doc: dict[str, Any] = {"starts": []}
    pinned: str | None = None
    for name in ACCOUNTS:
        if journal_path(workspace, name).exists():
            reset(workspace, name)
        t0 = time.perf_counter()
        account = start(workspace, name, cfg, source=str(CONFIG), model=pinned, note=progress)
        doc["starts"].append(time.perf_counter() - t0)
        with account:
            pinned = account.model_version
            doc["model_version"] = pinned
            doc["start_week"] = account.meta["start_week"]
            doc["fill"] = account.config.backtest.fill
            doc["preset"] = account.config.model.preset
            doc["models"] = len(account.config.data.tickers or ())
    return doc


def child_warm(workspace: Path, weeks: int, batch: int) -> dict[str, Any]:
    """``step(weeks=1)`` ``weeks`` times on one account, then ``step(weeks=batch)`` on another."""
    t0 = time.perf_counter()
    from simulator.stepping import step

    doc: dict[str, Any] = {"import": time.perf_counter() - t0, "calls": []}
    for _ in range(weeks):
        t0 = time.perf_counter()
        account, done = step(workspace, WARM_ACCOUNT, weeks=1)
        doc["calls"].append(time.perf_counter() - t0)
        account.close()
        if len(done) != 1:
            sys.exit(f"step(weeks=1) recorded {len(done)} weeks; the data holds too few weeks")
    t0 = time.perf_counter()
    account, done = step(workspace, BATCH_ACCOUNT, weeks=batch)
    doc["batch"] = time.perf_counter() - t0
    doc["batch_weeks"] = len(done)
    account.close()
    return doc


def group_seconds(stats: dict[Any, Any], fragments: tuple[str, ...]) -> float:
    """Seconds spent in the functions of the files matching ``fragments``, entered from outside.

    ``stats`` is ``pstats.Stats.stats``: per function (file, line, name) a tuple whose last item
    maps each caller to (calls, primitive calls, own time, cumulative time) of its calls.
    """

    def inside(key: tuple[str, int, str]) -> bool:
        path = key[0].replace(os.sep, "/")
        return any(fragment in path for fragment in fragments)

    total = 0.0
    for key, (*_rest, callers) in stats.items():
        if inside(key):
            total += sum(ct for caller, (*_c, ct) in callers.items() if not inside(caller))
    return total


def child_anatomy(workspace: Path, profile_out: Path) -> dict[str, Any]:
    """What a fresh ``replay step`` does, in-process: CLI import, first step, later steps."""
    import cProfile
    import pstats

    t0 = time.perf_counter()
    import simulator.cli  # noqa: F401  (what the console script imports before anything runs)

    doc: dict[str, Any] = {"import_cli": time.perf_counter() - t0}
    t0 = time.perf_counter()
    from simulator.stepping import step

    doc["import_replay"] = time.perf_counter() - t0
    before = set(sys.modules)
    t0 = time.perf_counter()
    step(workspace, FRESH_ACCOUNT, weeks=1)[0].close()
    doc["first_step"] = time.perf_counter() - t0
    doc["lazy_modules"] = len(set(sys.modules) - before)
    doc["heavy"] = {name: name in sys.modules for name in HEAVY}
    t0 = time.perf_counter()
    step(workspace, FRESH_ACCOUNT, weeks=1)[0].close()
    doc["later_step"] = time.perf_counter() - t0
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    step(workspace, FRESH_ACCOUNT, weeks=1)[0].close()
    profiler.disable()
    doc["profiled_step"] = time.perf_counter() - t0
    stats = pstats.Stats(profiler)
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    doc["groups"] = {label: group_seconds(table, frags) for label, frags in GROUPS.items()}
    stats.dump_stats(profile_out)
    return doc


def child_importtime(workspace: Path) -> dict[str, Any]:
    """Run under ``-X importtime``: the imports of the CLI and of a one-week step."""
    import simulator.cli  # noqa: F401
    from simulator.stepping import step

    step(workspace, FRESH_ACCOUNT, weeks=1)[0].close()
    return {"heavy": {name: name in sys.modules for name in HEAVY}}


# --- the parent -------------------------------------------------------------------------------


def child(
    kind: str, workspace: Path, extra: list[str], flags: tuple[str, ...] = ()
) -> tuple[dict[str, Any], str]:
    """Run ``--child kind`` in a new interpreter; returns its JSON line (and stderr).

    The document gains ``start_s`` (spawn to the child's module top: interpreter start) and
    ``exit_s`` (its JSON line written to its exit: interpreter teardown).
    """
    argv = [sys.executable, *flags, __file__, "--child", kind, str(workspace), *extra]
    env = {**os.environ, "FOLIOSIM_WORKSPACE": str(workspace)}
    spawned = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    ended = time.time()
    if proc.returncode != 0:
        sys.exit(f"child {kind} failed:\n{proc.stderr[-3000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    doc["start_s"] = doc.pop("t_top") - spawned
    doc["exit_s"] = ended - doc.pop("t_end")
    return doc, proc.stderr


def wall(argv: list[str], workspace: Path) -> float:
    """Wall clock of one command run as a user runs it (caller's env plus the workspace)."""
    env = {**os.environ, "FOLIOSIM_WORKSPACE": str(workspace)}
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return seconds


def parse_importtime(text: str) -> list[tuple[str, int, float, float]]:
    """``-X importtime`` lines as (module, depth, self s, cumulative s)."""
    rows = []
    for line in text.splitlines():
        if not line.startswith(IMPORT_HEADER) or "imported package" in line:
            continue
        self_us, cum_us, name = line[len(IMPORT_HEADER) :].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), depth, int(self_us) / 1e6, int(cum_us) / 1e6))
    return rows


def spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.3f} s, mean {statistics.fmean(values):.3f} s, "
        f"min {min(values):.3f} s, max {max(values):.3f} s"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def report(args: argparse.Namespace, workspace: Path) -> None:
    data = Path(args.data).expanduser()
    data = data if data.is_absolute() else (REPO / data).resolve()
    sets = overrides(str(data), args.model_preset, args.quick)
    warm_weeks: int = args.warm_weeks
    exe = Path(sys.executable).with_name("foliosim")
    print(machine_line(cpu_model(), f"workspace {workspace}; {load()} at the start"))

    progress("setup: opening the accounts (the first one trains the models if needed) ...")
    setup, _ = child("setup", workspace, sets)
    starts = setup["starts"]
    print(
        f"config {CONFIG.relative_to(REPO)} --set {' --set '.join(sets)}: model "
        f"{setup['model_version']} ({setup['preset']} preset, {setup['models']} tickers), fill "
        f"{setup['fill']}, first week {setup['start_week']}"
    )
    print(
        f"setup: accounts.start {starts[0]:.1f} s for the first account (trains unless the "
        f"registry holds the version), {statistics.fmean(starts[1:]):.1f} s for each other"
    )

    progress(f"warm: {warm_weeks} x step(weeks=1), then step(weeks={args.batch_weeks}) ...")
    warm, _ = child("warm", workspace, [str(warm_weeks), str(args.batch_weeks)])
    calls: list[float] = warm["calls"]
    batch, n = warm["batch"], warm["batch_weeks"]
    later = calls[1:] or calls
    marginal = (batch - statistics.median(later)) / (n - 1) if n > 1 else float("nan")
    print("warm, in one process (simulator.stepping.step):")
    print(f"  import simulator.stepping: {warm['import']:.2f} s")
    print(
        f"  step(weeks=1), first call of the process (lazy imports, torch among them): "
        f"{calls[0]:.3f} s"
    )
    print(
        f"  step(weeks=1), next {len(later)} calls: {spread(later)} -> "
        f"{statistics.median(later):.3f} s per week"
    )
    print(
        f"  step(weeks={args.batch_weeks}), one call: {batch:.2f} s for {n} weeks = "
        f"{batch / n:.3f} s per week (marginal {marginal:.3f} s per week beyond a one-week call)"
    )

    progress(f"fresh process: {args.repeat} x foliosim replay step ...")
    fresh = [
        wall([str(exe), "replay", "step", "--account", FRESH_ACCOUNT], workspace)
        for _ in range(args.repeat)
    ]
    bare = statistics.median(wall([sys.executable, "-c", "pass"], workspace) for _ in range(3))
    helps = statistics.median(wall([str(exe), "--help"], workspace) for _ in range(3))
    progress("fresh process: anatomy of a step (in-process, cProfile) ...")
    with tempfile.TemporaryDirectory(prefix="foliosim-bench-") as tmp:
        prof_path = Path(tmp) / "step.prof"
        anatomy, _ = child("anatomy", workspace, [str(prof_path)])
        if args.profile_out:
            shutil.copyfile(prof_path, args.profile_out)
    progress("fresh process: imports of a step (-X importtime) ...")
    imports, stderr = child("importtime", workspace, [], ("-X", "importtime"))
    rows = parse_importtime(stderr)
    median = statistics.median(fresh)
    print(
        f"fresh process, `foliosim replay step --account {FRESH_ACCOUNT}` (one week), "
        f"{len(fresh)} runs: {spread(fresh)}"
    )
    print(f"  runs: {', '.join(f'{s:.2f}' for s in fresh)} s")
    print(f"  python start (`python -c pass`, median of 3): {bare:.3f} s")
    print(f"  `foliosim --help` (start + the CLI's imports, median of 3): {helps:.3f} s")
    first, again = anatomy["first_step"], anatomy["later_step"]
    print(
        f"  a fresh process stepping in-process: interpreter start {anatomy['start_s']:.3f} s, "
        f"import simulator.cli {anatomy['import_cli']:.3f} s, import simulator.stepping "
        f"{anatomy['import_replay']:.3f} s, first step(weeks=1) {first:.3f} s ("
        f"{anatomy['lazy_modules']} more modules imported: lazy imports ~ {first - again:.3f} s "
        f"+ the work of a step ~ {again:.3f} s), exit (teardown) {anatomy['exit_s']:.3f} s"
    )
    parts = ("start_s", "import_cli", "import_replay", "first_step", "exit_s")
    accounted = sum(anatomy[k] for k in parts)
    print(
        f"  these add up to {accounted:.3f} s of the {median:.3f} s median fresh step (the rest: "
        "the command line's parsing and printing, and run-to-run noise)"
    )
    print(
        f"  one later step under cProfile ({anatomy['profiled_step']:.3f} s profiled, "
        f"{again:.3f} s unprofiled), seconds entered from outside each group:"
    )
    for label, seconds in anatomy["groups"].items():
        print(f"    {label:<60} {seconds:6.3f} s")
    if args.profile_out:
        print(f"    (profile written to {args.profile_out})")
    total_self = sum(r[2] for r in rows)
    print(
        f"  imports of a fresh step under -X importtime: {len(rows)} modules, "
        f"{total_self:.3f} s in all (the tool adds some overhead)"
    )
    packages: dict[str, float] = {}
    for name, _depth, own, _cum in rows:
        root = name.split(".")[0]
        packages[root] = packages.get(root, 0.0) + own
    top = sorted(packages.items(), key=lambda kv: -kv[1])[:10]
    print("    top 10 packages by own import time (all their modules):")
    print("      " + ", ".join(f"{p} {s:.3f}" for p, s in top) + " s")
    print("    top 10 imports by cumulative time (a module with everything it imported first):")
    for name, depth, _own, cum in sorted(rows, key=lambda r: -r[3])[:10]:
        print(f"      {cum:6.3f} s  {name} (nesting depth {depth})")
    heavy = imports["heavy"]
    print(
        "  modules loaded by a step: "
        + ", ".join(f"{name} {heavy[name]}" for name in HEAVY)
        + f"  [mlflow must be False: {'PASS' if not heavy['mlflow'] else 'FAIL'}]"
    )
    verdict = "PASS" if median < TARGET_S else "FAIL"
    print(
        f"target: fresh one-week step < {TARGET_S:.0f} s on 2 cores: {median:.2f} s median "
        f"[{verdict}]; warm {statistics.median(later):.3f} s per one-week call, "
        f"{batch / n:.3f} s per week in a {n}-week step; {load()} at the end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="paper12 CSV folder")
    parser.add_argument("--quick", action="store_true", help="small preset, 3 epochs, 12 weeks")
    parser.add_argument("--model-preset", default="paper", help="model preset (default paper)")
    parser.add_argument("--workspace", type=Path, help="workspace to use and keep")
    parser.add_argument("--repeat", type=int, default=5, help="fresh one-week steps to time")
    parser.add_argument(
        "--warm-weeks", type=int, help="warm step(weeks=1) calls (default 52, --quick 12)"
    )
    parser.add_argument("--batch-weeks", type=int, default=52, help="weeks of the batch step")
    parser.add_argument("--profile-out", type=Path, help="also write the step's cProfile here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, workspace, rest = args.child[0], Path(args.child[1]), args.child[2:]
        docs = {
            "setup": lambda: child_setup(workspace, rest),
            "warm": lambda: child_warm(workspace, int(rest[0]), int(rest[1])),
            "anatomy": lambda: child_anatomy(workspace, Path(rest[0])),
            "importtime": lambda: child_importtime(workspace),
        }
        doc = docs[kind]()
        print(json.dumps({**doc, "t_top": T_TOP, "t_end": time.time()}), flush=True)
        return
    if args.warm_weeks is None:
        args.warm_weeks = QUICK_WARM_WEEKS if args.quick else 52
    if args.workspace:
        args.workspace.mkdir(parents=True, exist_ok=True)
        report(args, args.workspace.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="foliosim-bench-") as tmp:
        report(args, Path(tmp) / "ws")


if __name__ == "__main__":
    main()
