"""Training benchmark: 12 per-ticker forecasters of each architecture and preset.

Run ``python bench/train.py`` (about 8 minutes: the ``paper`` and ``small`` LSTMs, then the
``paper`` attention LSTM and transformer), ``python bench/train.py --arch transformer`` (the
paper preset of one architecture, a few minutes) or ``python bench/train.py --quick`` (a smoke
run: the small preset of every architecture, 3 tickers, 3 epochs). For each run, in per-ticker
mode on the paper12 weekly closes trained up to ``TRAIN_END``, it prints per model the epochs
run, the best epoch (early stopping), seconds, seconds per epoch, the training windows and the
test MSE ratio model/naive on returns; then totals: the training time of the 12 models, samples
per second, the achieved GFLOP/s from an analytical FLOP count of the architecture
(:func:`forward_flops`) against the machine's float32 matmul peak (measured here, with torch.mm
and with oneDNN) and against the nominal AVX2 peak, and the peak resident memory of the
training process. Finally the latency of one week's predictions for every ticker from a
registered version, cold (a fresh process: imports, registry load, predict) and warm (repeated
``predict`` calls in one process). It is a report, not a test: it exits 0.

Every run trains in a fresh subprocess (``--child train``) so that its peak memory
(``ru_maxrss``) is its own; the cold prediction runs in another (``--child predict``) and the
matmul peaks in a third (``--child peak``). The parent imports nothing heavy until every child
has run: on Linux a child's ``ru_maxrss`` starts at its parent's resident size when it was
spawned (exec carries the old high-water mark over), so a large parent would inflate it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import cpu_model, machine_line, max_rss_mib, progress

from models.spec import ARCHS

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = "../shared/data/paper12"
TICKERS = (
    "TSLA",
    "NVDA",
    "AAPL",
    "MSFT",
    "AMZN",
    "SHOP",
    "NFLX",
    "NKE",
    "PEP",
    "JPM",
    "UNH",
    "BA",
)
BENCHMARK = "IXIC"
DATA_START, DATA_END = "2000-01-01", "2023-06-30"
TRAIN_END = "2022-06-24"
#: The runs of a full benchmark, ``(preset, arch)``; ``--arch`` keeps the paper preset of some.
RUNS = (
    ("paper", "lstm"),
    ("small", "lstm"),
    ("paper", "lstm_attention"),
    ("paper", "transformer"),
)
QUICK_TICKERS = 3
QUICK_EPOCHS = 3
WARM_CALLS = 50
MATMUL_N, QUICK_MATMUL_N = 4096, 2048
MATMUL_REPEATS = 5
#: Nominal float32 peak of the 2 cores the issue quotes (AVX2, 2 FMA units x 8 lanes x 2 flops
#: per cycle at ~3 GHz, x 2 cores).
NOMINAL_GFLOPS = 200.0
TARGET_TRAIN_S = 180.0
TARGET_WARM_MS = 20.0
TARGET_MEM_MIB = 2048.0
RESULT_TAG = "BENCH_RESULT "


# --- helpers shared by the children ---------------------------------------------------------


def vm_hwm_mib() -> float | None:
    """This process's own high-water RSS from ``/proc/self/status`` (VmHWM), MiB; unlike
    ``ru_maxrss`` it does not inherit the parent's. None where there is no procfs."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def emit(result: dict[str, Any]) -> None:
    print(RESULT_TAG + json.dumps(result), flush=True)


def load_closes(data: Path, tickers: tuple[str, ...]) -> Any:
    """Weekly closes ``(n_weeks, n_tickers)`` of ``tickers`` from the CSV folder ``data``."""
    from simulator.config import DataConfig
    from simulator.data.sources import load_daily
    from simulator.data.weekly import make_weekly

    cfg = DataConfig(
        source="csv",
        path=str(data),
        tickers=tickers,
        benchmark=BENCHMARK,
        start=DATA_START,
        end=DATA_END,
    )
    with tempfile.TemporaryDirectory(prefix="foliosim-bench-") as tmp:
        return make_weekly(load_daily(cfg, 0.0, Path(tmp))).closes()


def lstm_forward_flops(hidden: int, layers: int, window: int, inputs: int = 1) -> int:
    """Multiply-add FLOPs of one forward pass over one window: the LSTM's gate matmuls
    (``2 * 4 * H * (in + H)`` per layer and step) plus the linear head (``2 * H``).
    Elementwise gate arithmetic and biases are not counted."""
    per_step = 0
    size_in = inputs
    for _ in range(layers):
        per_step += 2 * 4 * hidden * (size_in + hidden)
        size_in = hidden
    return window * per_step + 2 * hidden


def attention_forward_flops(hidden: int, layers: int, window: int) -> int:
    """The LSTM's FLOPs (:func:`lstm_forward_flops`) plus additive attention over the T weeks:
    ``W h_t`` for every week (``2 H^2 T``), ``U h_T`` once (``2 H^2``), the scores ``v . tanh``
    (``2 H T``), the context ``sum a_t h_t`` (``2 H T``), and the head on ``[c, h_T]`` (``2 H``
    more than the LSTM's). tanh, softmax and biases are not counted.

    >>> attention_forward_flops(2, 1, 3) - lstm_forward_flops(2, 1, 3)
    60
    """
    h, t = hidden, window
    return lstm_forward_flops(hidden, layers, window) + 2 * h * h * (t + 1) + 4 * h * t + 2 * h


def transformer_forward_flops(d_model: int, layers: int, window: int, feedforward: int) -> int:
    """Multiply-add FLOPs of the transformer's forward pass over one window of T weeks: the
    input projection (``2 d T``), then per encoder layer the Q, K, V and output projections
    (``8 T d^2``), the attention scores ``Q K^T`` and the weighted sum of V (``4 T^2 d``) and
    the feed-forward block (``4 T d f``, f its width), and the head (``2 d``). LayerNorm,
    softmax, ReLU, biases and the positional add are not counted.

    >>> transformer_forward_flops(4, 1, 2, 8)  # 16 + (256 + 64 + 256) + 8
    600
    """
    d, t, f = d_model, window, feedforward
    return 2 * d * t + layers * (8 * t * d * d + 4 * t * t * d + 4 * t * d * f) + 2 * d


def forward_flops(arch: str, hidden: int, layers: int, window: int) -> int:
    """FLOPs of one forward pass over one window of the network ``arch`` builds (called in a
    training child: it imports torch)."""
    if arch == "transformer":
        from models.net import FEEDFORWARD

        return transformer_forward_flops(hidden, layers, window, FEEDFORWARD * hidden)
    if arch == "lstm_attention":
        return attention_forward_flops(hidden, layers, window)
    return lstm_forward_flops(hidden, layers, window)


def run_label(preset: str, arch: str) -> str:
    """``paper`` for the paper LSTM (as before architectures), else ``paper transformer``."""
    return preset if arch == "lstm" else f"{preset} {arch}"


def net_text(arch: str, hidden: int, layers: int) -> str:
    """The network in words, for the report."""
    if arch == "transformer":
        return f"transformer encoder, {layers} layers, d_model {hidden}, 4 heads + linear head"
    if arch == "lstm_attention":
        return f"{layers} x {hidden} LSTM + additive attention + linear head"
    return f"{layers} x {hidden} LSTM + linear head"


def stop_kind(reason: str) -> str:
    if reason.startswith("validation loss did not improve"):
        return "early"
    if reason.startswith("reached max_epochs"):
        return "max"
    if reason.startswith("loss became non-finite"):
        return "nan"
    return "?"


# --- the children ---------------------------------------------------------------------------


def child_train(args: argparse.Namespace) -> None:
    """Train one preset and arch on ``args.tickers`` in this (fresh) process; print one JSON
    line.

    With ``args.workspace``, the trained model is then registered there (after the training
    memory figure is taken: registering imports MLflow) and the weekly closes are pickled to
    ``args.closes`` for the prediction child.
    """
    tickers = tuple(args.tickers.split(","))
    started = time.perf_counter()
    closes = load_closes(Path(args.data), tickers)
    load_seconds = time.perf_counter() - started

    import torch

    from models.forecaster import TrainEvent, train
    from models.spec import ModelSpec

    arch = args.child_arch
    fields: dict[str, Any] = {"mode": "per_ticker", "threads": args.threads, "arch": arch}
    if args.max_epochs:
        fields["max_epochs"] = args.max_epochs
    spec = ModelSpec.from_preset(f"bench-{args.preset}-{arch}", args.preset, **fields)
    label = run_label(args.preset, arch)
    before_mib = max_rss_mib()

    def on_event(event: TrainEvent) -> None:
        if event.result is not None:
            r = event.result
            progress(
                f"  {label} {event.key:<5} ({event.index + 1}/{event.total}): "
                f"{r.epochs} epochs (best {r.best_epoch}) in {r.seconds:.1f} s"
            )

    started, cpu_started = time.perf_counter(), time.process_time()
    model, report = train(closes, spec, TRAIN_END, on_event)
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started
    train_mib = max_rss_mib()
    train_hwm = vm_hwm_mib()

    as_of = closes.index[-1]
    predicted = model.predict(closes, as_of)
    per_ticker = report.metrics.get("per_ticker", {})
    fits = {}
    for key, fit in report.fits.items():
        ratio = per_ticker.get(key, {}).get("mse_ratio")
        fits[key] = {
            "epochs": fit.epochs,
            "best_epoch": fit.best_epoch,
            "stop": stop_kind(fit.stop_reason),
            "seconds": fit.seconds,
            "n_train": fit.n_train,
            "n_val": fit.n_val,
            "n_test": int(per_ticker.get(key, {}).get("n", 0)),
            "mse_ratio": ratio,
        }
    net = next(iter(model.nets.values()))
    result: dict[str, Any] = {
        "preset": args.preset,
        "arch": arch,
        "label": label,
        "hidden": spec.hidden,
        "layers": spec.layers,
        "forward_flops": forward_flops(spec.arch, spec.hidden, spec.layers, spec.window),
        "window": spec.window,
        "batch": spec.batch,
        "max_epochs": spec.max_epochs,
        "patience": spec.patience,
        "params": sum(p.numel() for p in net.parameters()),
        "threads": torch.get_num_threads(),
        "load_seconds": load_seconds,
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "before_mib": before_mib,
        "train_mib": train_mib,
        "train_hwm_mib": train_hwm,
        "fits": fits,
        "mse_ratio_all": (report.metrics.get("all") or {}).get("mse_ratio"),
        "as_of": as_of.date().isoformat(),
        "predicted": {t: float(v) for t, v in predicted.items()},
    }
    if args.workspace:
        from models.registry import Registry

        started = time.perf_counter()
        info = Registry(Path(args.workspace)).register(model, report)
        result.update(
            ref=info.ref,
            register_seconds=time.perf_counter() - started,
            register_mib=max_rss_mib(),
        )
    if args.closes:
        closes.to_pickle(args.closes)
    emit(result)


def child_predict(args: argparse.Namespace) -> None:
    """Cold prediction in this fresh process: imports, registry load, one ``predict``; then
    ``args.warm`` warm calls of ``predict`` on the loaded model. Prints one JSON line."""
    t0 = time.perf_counter()
    import pandas as pd
    import torch

    from models.registry import Registry

    t1 = time.perf_counter()
    closes = pd.read_pickle(args.closes)
    as_of = pd.Timestamp(args.as_of)
    t2 = time.perf_counter()
    model = Registry(Path(args.workspace)).load(args.ref)
    t3 = time.perf_counter()
    predicted = model.predict(closes, as_of)
    t4 = time.perf_counter()
    ready = time.time() - args.spawned_at if args.spawned_at else float("nan")
    warm: list[float] = []
    for _ in range(args.warm):
        start = time.perf_counter()
        model.predict(closes, as_of)
        warm.append(time.perf_counter() - start)
    emit(
        {
            "import_seconds": t1 - t0,
            "closes_seconds": t2 - t1,
            "load_seconds": t3 - t2,
            "predict_seconds": t4 - t3,
            "ready_seconds": ready,
            "warm": warm,
            "threads": torch.get_num_threads(),
            "tickers": len(predicted),
            "predicted": {t: float(v) for t, v in predicted.items()},
            "peak_mib": max_rss_mib(),
        }
    )


def child_peak(args: argparse.Namespace) -> None:
    """The matmul peaks in this fresh process (the parent stays small); one JSON line."""
    peaks = matmul_peak(args.threads or os.cpu_count() or 1, args.matmul_n, MATMUL_REPEATS)
    emit({"mkl": peaks.mkl, "onednn": peaks.onednn})


def spawn(cmd: list[str], what: str) -> tuple[dict[str, Any], float]:
    """Run a child (its stderr goes to ours, as progress); its result and wall seconds."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - started
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}); see its stderr above")
    return json.loads(lines[-1][len(RESULT_TAG) :]), wall


# --- the machine ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Peaks:
    """Best float32 GFLOP/s of a large square matmul: ``torch.mm`` (MKL sgemm) and oneDNN.

    On this project's AMD EPYC (Zen 5) machine MKL runs at about AVX2 speed while oneDNN, which
    also runs PyTorch's CPU LSTM (its RNN primitive), uses AVX-512: the LSTM can beat
    ``torch.mm``.
    ``onednn`` is None where torch's private ``mkldnn_linear`` is unavailable.
    """

    mkl: float
    onednn: float | None

    def best(self, other: Peaks) -> Peaks:
        ones = [x for x in (self.onednn, other.onednn) if x is not None]
        return Peaks(max(self.mkl, other.mkl), max(ones) if ones else None)

    def text(self) -> str:
        one = f"{self.onednn:.1f}" if self.onednn is not None else "n/a"
        return f"torch.mm {self.mkl:.1f}, oneDNN {one}"


def matmul_peak(threads: int, n: int, repeats: int) -> Peaks:
    """Best float32 GFLOP/s of an ``n x n`` matmul on ``threads`` threads, of ``repeats``."""
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen)
    b = torch.randn(n, n, generator=gen)

    def best(run: Callable[[], object]) -> float:
        run()  # warm-up
        seconds = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            seconds = min(seconds, time.perf_counter() - start)
        return 2.0 * n**3 / seconds / 1e9

    mkl = best(lambda: torch.mm(a, b))
    try:
        # oneDNN inner product, x @ w.T; the same GEMM kernels as its RNN primitive.
        am, bm = a.to_mkldnn(), b.to_mkldnn()
        onednn: float | None = best(lambda: torch._C._nn.mkldnn_linear(am, bm))
    except (AttributeError, RuntimeError):
        onednn = None
    return Peaks(mkl, onednn)


def percent_of(gflops: float, peaks: Peaks, digits: int = 1) -> str:
    """``X% of torch.mm, Y% of oneDNN, Z% of nominal``."""
    parts = [f"{100 * gflops / peaks.mkl:.{digits}f}% of the torch.mm peak"]
    if peaks.onednn is not None:
        parts.append(f"{100 * gflops / peaks.onednn:.{digits}f}% of the oneDNN peak")
    parts.append(f"{100 * gflops / NOMINAL_GFLOPS:.{digits}f}% of the nominal {NOMINAL_GFLOPS:.0f}")
    return ", ".join(parts)


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return " ".join(f for f in ("avx2", "fma", "avx512f") if f in flags) or "-"
    except OSError:
        pass
    return "?"


def machine() -> str:
    import numpy as np
    import pandas as pd
    import torch

    return machine_line(
        f"{cpu_model()} ({cpu_flags()})",
        f"torch {torch.__version__}, numpy {np.__version__}, pandas {pd.__version__}",
    )


# --- the report -----------------------------------------------------------------------------


def mib_text(value: float | None) -> str:
    return f"{value:.0f} MiB" if value is not None else "n/a"


def ratio_text(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def run_totals(r: dict[str, Any]) -> dict[str, float]:
    """Totals over a run's models: seconds, epochs, windows processed and FLOPs."""
    fits = r["fits"].values()
    forward = r["forward_flops"]
    fit_seconds = sum(f["seconds"] for f in fits)
    epochs = sum(f["epochs"] for f in fits)
    train_windows = sum(f["epochs"] * f["n_train"] for f in fits)
    val_windows = sum(f["epochs"] * f["n_val"] for f in fits)
    flops = forward * (3 * train_windows + val_windows)
    return {
        "forward": forward,
        "fit_seconds": fit_seconds,
        "epochs": epochs,
        "train_windows": train_windows,
        "val_windows": val_windows,
        "flops": flops,
        "gflops": flops / fit_seconds / 1e9,
    }


def print_run(r: dict[str, Any], peaks: Peaks) -> dict[str, float]:
    t = run_totals(r)
    print(
        f"{r['label']}: {net_text(r['arch'], r['hidden'], r['layers'])}, "
        f"{r['params']:,} parameters per model, window {r['window']}, batch {r['batch']}, "
        f"max_epochs {r['max_epochs']}, patience {r['patience']}, torch threads {r['threads']}"
    )
    header = (
        f"  {'ticker':<7}{'epochs':>7}{'best':>6}{'stop':>7}{'seconds':>9}{'s/epoch':>9}"
        f"{'train win':>11}{'val win':>9}{'test wk':>9}{'MSE ratio':>11}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for ticker, f in r["fits"].items():
        print(
            f"  {ticker:<7}{f['epochs']:>7}{f['best_epoch']:>6}{f['stop']:>7}"
            f"{f['seconds']:>9.2f}{f['seconds'] / f['epochs']:>9.3f}{f['n_train']:>11,}"
            f"{f['n_val']:>9,}{f['n_test']:>9}{ratio_text(f['mse_ratio']):>11}"
        )
    n = len(r["fits"])
    print("  (the first model's seconds include torch's one-off warm-up in a fresh process)")
    print(
        f"  all {n} models: MSE ratio model/naive over every test week "
        f"{ratio_text(r['mse_ratio_all'])}"
    )
    print(
        f"  training: {r['train_seconds']:.1f} s for train() (windows, scalers, {n} fits, test "
        f"predictions); {t['fit_seconds']:.1f} s in the fits; data loading "
        f"{r['load_seconds']:.1f} s (not included); {r['train_cpu_seconds']:.1f} CPU seconds "
        "of the process in train(), all threads (waiting threads that spin count too)"
    )
    print(
        f"  {t['epochs']:.0f} epochs in all: {t['fit_seconds'] / t['epochs']:.3f} s/epoch "
        f"(fit seconds / epochs, all models)"
    )
    print(
        f"  samples/s: {t['train_windows'] / t['fit_seconds']:,.0f} training windows/s "
        f"({t['train_windows']:,.0f} = epochs x train windows; the fit time includes the "
        f"validation passes); {(t['train_windows'] + t['val_windows']) / t['fit_seconds']:,.0f}"
        f" windows/s counting validation windows too"
    )
    print(
        f"  FLOPs: {t['forward'] / 1e6:.2f} MFLOP per window forward; training = 3 x forward "
        f"per train window + 1 x per val window, every epoch; total {t['flops'] / 1e12:.2f} TFLOP"
    )
    print(f"  achieved {t['gflops']:.1f} GFLOP/s = {percent_of(t['gflops'], peaks)}")
    print(
        f"  peak resident memory of the training process: {r['train_mib']:.0f} MiB "
        f"(after imports and data loading: {r['before_mib']:.0f} MiB; VmHWM cross-check "
        f"{mib_text(r['train_hwm_mib'])})"
        + (
            f"; {r['register_mib']:.0f} MiB after registering (MLflow imported)"
            if "register_mib" in r
            else ""
        )
    )
    print()
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small preset only, {QUICK_TICKERS} tickers, {QUICK_EPOCHS} epochs",
    )
    parser.add_argument(
        "--arch",
        action="append",
        choices=ARCHS,
        help="only this architecture's paper preset (repeatable; default: every run)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads for training (0 = every core)"
    )
    parser.add_argument(
        "--data",
        default=None,
        help=f"folder of daily CSVs (default {DEFAULT_DATA}, relative to the repository root)",
    )
    parser.add_argument("--child", choices=["train", "predict", "peak"], help=argparse.SUPPRESS)
    parser.add_argument("--preset", default="paper", help=argparse.SUPPRESS)
    parser.add_argument("--child-arch", default="lstm", choices=ARCHS, help=argparse.SUPPRESS)
    parser.add_argument("--tickers", default=",".join(TICKERS), help=argparse.SUPPRESS)
    parser.add_argument("--max-epochs", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ref", default="", help=argparse.SUPPRESS)
    parser.add_argument("--closes", default="", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", default="", help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, default=WARM_CALLS, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--matmul-n", type=int, default=MATMUL_N, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "train":
        child_train(args)
        return 0
    if args.child == "predict":
        child_predict(args)
        return 0
    if args.child == "peak":
        child_peak(args)
        return 0

    data = Path(args.data).resolve() if args.data else (REPO / DEFAULT_DATA).resolve()
    tickers = TICKERS[:QUICK_TICKERS] if args.quick else TICKERS
    if args.quick:
        runs = tuple(("small", arch) for arch in args.arch or ARCHS)
    else:
        runs = tuple(("paper", arch) for arch in args.arch) if args.arch else RUNS
    labels = [run_label(*run) for run in runs]
    max_epochs = QUICK_EPOCHS if args.quick else 0
    registered = labels[0]  # the paper LSTM in a full run
    threads = args.threads or os.cpu_count() or 1
    matmul_n = QUICK_MATMUL_N if args.quick else MATMUL_N

    peak_cmd = [
        sys.executable,
        __file__,
        "--child",
        "peak",
        "--threads",
        str(args.threads),
        "--matmul-n",
        str(matmul_n),
    ]
    progress(f"matmul peak ({matmul_n} x {matmul_n} float32, {threads} threads) ...")
    peaks_before = Peaks(**spawn(peak_cmd, "matmul peak")[0])
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="foliosim-bench-train-") as tmp:
        workspace = Path(tmp) / "workspace"
        closes_file = Path(tmp) / "closes.pkl"
        for (preset, arch), label in zip(runs, labels, strict=True):
            progress(f"training {label} on {len(tickers)} tickers (fresh process) ...")
            cmd = [
                sys.executable,
                __file__,
                "--child",
                "train",
                "--preset",
                preset,
                "--child-arch",
                arch,
                "--tickers",
                ",".join(tickers),
                "--threads",
                str(args.threads),
                "--max-epochs",
                str(max_epochs),
                "--data",
                str(data),
            ]
            if label == registered:
                cmd += ["--workspace", str(workspace), "--closes", str(closes_file)]
            results[label], _ = spawn(cmd, f"training {label}")
        reg = results[registered]
        progress(f"cold and warm prediction from {reg['ref']} (fresh process) ...")
        cold, cold_wall = spawn(
            [
                sys.executable,
                __file__,
                "--child",
                "predict",
                "--workspace",
                str(workspace),
                "--ref",
                reg["ref"],
                "--closes",
                str(closes_file),
                "--as-of",
                reg["as_of"],
                "--warm",
                str(WARM_CALLS),
                "--spawned-at",
                repr(time.time()),
            ],
            "prediction",
        )
    progress("matmul peak again ...")
    peaks_after = Peaks(**spawn(peak_cmd, "matmul peak")[0])
    peaks = peaks_before.best(peaks_after)

    print("foliosim training benchmark: per-ticker forecasters on weekly closes, per architecture")
    print(f"machine: {machine()}")
    print(
        f"data: {data} ({len(tickers)} tickers: {', '.join(tickers)}), weekly closes "
        f"{DATA_START}..{DATA_END}; trained up to {TRAIN_END}, later weeks are the test split"
    )
    print(
        f"runs: {', '.join(labels)}, each in a fresh subprocess, --threads {args.threads} "
        f"({threads} threads)" + (f"; --quick: max_epochs {QUICK_EPOCHS}" if args.quick else "")
    )
    print(
        f"peak: {matmul_n} x {matmul_n} float32 matmul, {threads} threads, best of "
        f"{MATMUL_REPEATS}, GFLOP/s before the runs ({peaks_before.text()}) and after them "
        f"({peaks_after.text()}): {peaks.text()}"
    )
    print(
        "      torch.mm = MKL sgemm (about AVX2 speed on AMD CPUs); oneDNN = mkldnn_linear, the "
        "library behind torch's CPU LSTM (AVX-512 where the CPU has it);"
    )
    print(
        f"      nominal {NOMINAL_GFLOPS:.0f} GFLOP/s = the AVX2 FMA peak of 2 cores quoted in the "
        "issue (an AVX-512 CPU can go past it)"
    )
    print(
        "      other load on the machine lowers the measured peak and the training figures "
        "alike; the figures are single runs"
    )
    print(
        "MSE ratio: test-split MSE of predicted returns, model / naive (next close = this "
        "close); < 1 beats naive. stop: early = patience ran out, max = max_epochs reached"
    )
    print()
    totals = {label: print_run(results[label], peaks) for label in labels}

    warm = sorted(cold["warm"])
    warm_ms = 1000 * statistics.median(warm)
    in_process = cold["load_seconds"] + cold["predict_seconds"]
    diffs = [
        abs(v - reg["predicted"][t]) for t, v in cold["predicted"].items() if v == v
    ]  # v == v: skip NaN (a ticker without a full window)
    diff = max(diffs, default=float("nan"))
    print(
        f"prediction: one week (as of {reg['as_of']}) for {cold['tickers']} tickers from the "
        f"registered version {reg['ref']} ({registered}), torch threads {cold['threads']}"
    )
    print(
        f"  registering it took {reg['register_seconds']:.1f} s (MLflow import, files, plots, "
        "SQLite store)"
    )
    print(
        f"  cold: {cold['ready_seconds']:.2f} s from spawning the subprocess to its predictions "
        "(interpreter start, imports, closes from a pickle, Registry.load, predict); "
        f"{cold_wall:.2f} s wall for the whole subprocess (also the warm calls and exit)"
    )
    print(
        f"        in process: imports {cold['import_seconds']:.2f} s, closes "
        f"{cold['closes_seconds']:.3f} s, Registry.load {cold['load_seconds']:.2f} s, first "
        f"predict {1000 * cold['predict_seconds']:.1f} ms; load + predict {in_process:.2f} s; "
        f"imports + load + predict {cold['import_seconds'] + in_process:.2f} s"
    )
    p90 = warm[min(len(warm) - 1, int(0.9 * len(warm)))]
    print(
        f"  warm: model.predict(closes, as_of) x {len(warm)} in that process after the cold "
        f"call: median {warm_ms:.2f} ms, min {1000 * warm[0]:.2f} ms, p90 {1000 * p90:.2f} ms, "
        f"max {1000 * warm[-1]:.2f} ms"
    )
    print(
        f"  sanity: loaded version vs the trained model in memory, max |difference| of the "
        f"predicted returns {diff:.2e}; prediction process peak {cold['peak_mib']:.0f} MiB"
    )
    print()

    memory = max(r["train_mib"] for r in results.values())
    print("summary")
    for label in labels:
        r, t = results[label], totals[label]
        paper = r["preset"] == "paper" and not args.quick
        target = f"target < {TARGET_TRAIN_S:.0f} s: " + met(r["train_seconds"] < TARGET_TRAIN_S)
        print(
            f"  {label}: {len(r['fits'])} models trained in {r['train_seconds']:.1f} s "
            f"({target if paper else 'no target'}; {r['train_cpu_seconds']:.0f} CPU s); "
            f"{t['epochs']:.0f} epochs, {t['fit_seconds'] / t['epochs']:.3f} "
            f"s/epoch, {t['train_windows'] / t['fit_seconds']:,.0f} train windows/s, "
            f"{t['gflops']:.1f} GFLOP/s = {percent_of(t['gflops'], peaks, 0)}"
        )
    print(
        f"  warm predict of one week, {cold['tickers']} tickers: {warm_ms:.2f} ms median "
        f"(target < {TARGET_WARM_MS:.0f} ms): "
        + (met(warm_ms < TARGET_WARM_MS) if not args.quick else "n/a (--quick, small preset)")
    )
    print(
        f"  training process peak memory: {memory:.0f} MiB, max over runs "
        f"(target < {TARGET_MEM_MIB:.0f} MiB): "
        + (met(memory < TARGET_MEM_MIB) if not args.quick else "n/a (--quick)")
    )
    print(
        f"  cold predict: {cold['ready_seconds']:.2f} s from process start to predictions, "
        f"{in_process:.2f} s load + predict in process (no target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
