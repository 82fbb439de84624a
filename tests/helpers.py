"""Helpers shared by the test modules, so that no test module imports another."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator import accounts, stepping
from simulator.cli import main
from simulator.config import Config, load_config
from simulator.journal import Journal
from simulator.metrics import summarize, weekly_risk_free
from simulator.results import BacktestResult
from strategies.rule import Decision, DecisionRule, History, State, as_decision
from tests.conftest import PAPER12, PAPER_CONFIG

#: examples/paper2023.toml offline on paper12.
CSV = ["data.source=csv", f"data.path={PAPER12}"]
#: ... as a 1/N account (no model).
EQUAL = [*CSV, "backtest.strategy=equal_weight"]
FIRST_WEEK = pd.Timestamp("2022-07-01")
LAST_WEEK = pd.Timestamp("2023-06-23")


# --- decision rules ------------------------------------------------------------------------


class Scripted:
    """A decision rule from a function ``(week, tradable tickers) -> weights``."""

    def __init__(
        self, fn: Callable[[pd.Timestamp, list[str]], Mapping[str, float]], name: str = "scripted"
    ) -> None:
        self.fn = fn
        self.name = name

    def decide(self, week: pd.Timestamp, history: History, state: State) -> Decision:
        return as_decision(self.fn(week, list(history.tradable)))


def whole_and_resumed(weekly: Any, rule: DecisionRule, **settings: Any) -> tuple[Any, list[Any]]:
    """One engine run of ``rule`` over ``weekly``'s calendar, and the same weeks run one at a
    time, each resumed from the record of the week before (as a paper account steps): the
    whole run's result and the week records of the resumed one."""
    from simulator.engine import run_engine

    weeks = weekly.calendar
    whole = run_engine(weekly, weeks, weeks, rule, **settings)
    records: list[Any] = []
    for week in weeks:
        resume = records[-1].resume() if records else None
        piece = pd.DatetimeIndex([week])
        run_engine(weekly, piece, piece, rule, resume=resume, on_week=records.append, **settings)
    return whole, records


def ask(
    rule: DecisionRule,
    closes: pd.DataFrame,
    week: pd.Timestamp,
    tickers: list[str],
    state: State | None = None,
) -> dict[str, float]:
    """``rule``'s weights at ``week`` as the engine would ask: the closes cut at ``week``."""
    return dict(decide(rule, closes, week, tickers, state).weights)


def decide(
    rule: DecisionRule,
    closes: pd.DataFrame,
    week: pd.Timestamp,
    tickers: list[str],
    state: State | None = None,
) -> Decision:
    """``rule``'s whole decision at ``week`` (see :func:`ask`)."""
    history = History.cut(closes, week, tickers)
    return as_decision(rule.decide(week, history, state or State(1.0, 1.0)))


# --- the command line ----------------------------------------------------------------------


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``foliosim argv`` in-process; return its exit status."""
    monkeypatch.setattr(sys, "argv", ["foliosim", *argv])
    try:
        main()
    except SystemExit as ex:
        return int(ex.code or 0)
    return 0


def sets(items: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for item in items for arg in ("--set", item)]


#: The lines a command prints to a log while it works (simulator.clikit.Reporter).
PROGRESS = re.compile(
    r"(1/N|backtest \S+|baseline \S+|tear sheet|trials|model \d+/\d+: .*|training .*)"
    r"( \.\.\.|: .* in [\d.]+ s)?"
)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a user error prints on stderr (after the progress lines of the work done
    before it, if any: stderr is a log in tests)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error") for line in lines) == 1, err
    assert all(PROGRESS.fullmatch(line) for line in lines[:-1]), err
    return lines[-1]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


# --- paper accounts ------------------------------------------------------------------------


def ew_config(*extra: str) -> Config:
    return load_config(PAPER_CONFIG, [*EQUAL, *extra])


def open_new(workspace: Path, name: str, cfg: Config, **kwargs: Any) -> Path:
    """Start account ``name`` in-process; return its journal's path (closed)."""
    with accounts.start(workspace, name, cfg, source=str(PAPER_CONFIG), **kwargs) as account:
        return account.journal.path


def advance(workspace: Path, name: str, **kwargs: Any) -> pd.DatetimeIndex:
    """``stepping.step`` in-process, closing the account; returns the weeks processed."""
    account, done = stepping.step(workspace, name, **kwargs)
    account.close()
    return done


def assert_journal_is_the_backtest(
    journal: Journal, result: BacktestResult, first_week: pd.Timestamp = FIRST_WEEK
) -> None:
    """The weekly returns and the orders of ``journal`` are those of ``result``, exactly."""
    rows = journal.weeks()
    weeks = pd.DatetimeIndex(result.returns.index)
    # The account records the first decision week too (its equity is the start cash).
    assert rows["week"].tolist() == [first_week, *weeks]
    assert rows["seq"].tolist() == list(range(1, len(weeks) + 2))
    equity = pd.Series(rows["equity"].to_numpy(float), index=pd.DatetimeIndex(rows["week"]))
    returns = equity.pct_change().iloc[1:]
    np.testing.assert_array_equal(returns.index, weeks)
    np.testing.assert_array_equal(returns.to_numpy(), result.returns["strategy"].to_numpy())
    assert equity.iloc[-1] == result.summary.final_value

    orders = journal.orders()
    # The account's last week decided too; its orders end only when the next week is stepped.
    assert not (orders["date_submitted"] >= weeks[-1]).any()
    mine = orders.drop(columns="week").reset_index(drop=True)
    theirs = result.orders.reset_index(drop=True)
    assert len(mine) > 0
    pd.testing.assert_frame_equal(mine, theirs, check_exact=True, check_dtype=False)


# --- pages in a real browser ---------------------------------------------------------------

#: Debian's chromium; `make test` installs it when missing.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Fail (never skip) a browser or security test when Chromium is missing: a skipped
    security check would pass unnoticed."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(apt-get install -y chromium); browser and security tests need it",
            pytrace=False,
        )


@dataclass(frozen=True)
class Browsed:
    """What headless Chromium saw of a page (see :func:`browse`).

    Attributes
    ----------
    errors
        Uncaught exceptions, console errors and browser log errors, one line each.
    requests
        Every URL the page asked for that is not the page itself or a ``data:`` URL, and
        every request that failed.
    fonts
        ``(family, is a web font) -> glyphs`` drawn in that font, over every element with
        text (``<details>`` opened first).
    text
        The page's rendered text (``document.body.innerText``, details opened).
    title
        ``document.title``.
    """

    errors: list[str]
    requests: list[str]
    fonts: dict[tuple[str, bool], int]
    text: str
    title: str


class _DevTools:
    """The Chrome DevTools protocol over ``--remote-debugging-pipe`` (NUL-separated JSON on
    file descriptors 3 and 4 of the browser): no web socket, no extra package."""

    def __init__(self, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser reads fd 3 and writes fd 4: bash moves our pipe ends there.
        argv = [
            "/bin/bash",
            "-c",
            'exec "$@" 3<&"$CDP_IN" 4>&"$CDP_OUT"',
            "chromium",
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        env = {**os.environ, "CDP_IN": str(to_browser_r), "CDP_OUT": str(from_browser_w)}
        self.proc = subprocess.Popen(
            argv,
            env=env,
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("the browser did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(message))

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Call ``method``; return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        """The first event named ``method`` (already received or the next ones)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _text_elements(node: dict[str, Any], out: list[int]) -> None:
    """Node ids of the elements that hold text, outside head, script, style and svg."""
    if node.get("nodeName", "").lower() in {"head", "script", "style", "svg", "title"}:
        return
    children = node.get("children", [])
    if any(c["nodeType"] == 3 and c["nodeValue"].strip() for c in children):
        out.append(node["nodeId"])
    for child in children:
        _text_elements(child, out)


def browse(page: Path, tmp_path: Path) -> Browsed:
    """Open ``page`` in headless Chromium and report its errors, requests and fonts."""
    profile = tmp_path / f"chromium-{len(list(tmp_path.iterdir()))}"
    tools = _DevTools(profile)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network", "DOM", "CSS"):
            tools.send(f"{domain}.enable", session=session)
        tools.send("Page.navigate", {"url": page.as_uri()}, session=session)
        tools.wait_for("Page.loadEventFired", timeout=120)
        script = (
            "document.querySelectorAll('details').forEach(d => d.open = true);"
            "document.fonts.ready.then(() => document.title)"
        )
        title = tools.send(
            "Runtime.evaluate", {"expression": script, "awaitPromise": True}, session=session
        )["result"]["value"]
        text = tools.send(
            "Runtime.evaluate",
            {"expression": "document.body.innerText", "returnByValue": True},
            session=session,
        )["result"]["value"]
        root = tools.send("DOM.getDocument", {"depth": -1}, session=session)["root"]
        nodes: list[int] = []
        _text_elements(root, nodes)
        fonts: dict[tuple[str, bool], int] = {}
        for node in nodes:
            used = tools.send("CSS.getPlatformFontsForNode", {"nodeId": node}, session=session)
            for font in used["fonts"]:
                key = (font["familyName"], bool(font["isCustomFont"]))
                fonts[key] = fonts.get(key, 0) + int(font["glyphCount"])
    finally:
        tools.close()
    errors, requests = [], []
    for event in tools.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            errors.append(details.get("exception", {}).get("description", details["text"]))
        elif method == "Runtime.consoleAPICalled" and params["type"] in {"error", "assert"}:
            errors.append(" ".join(str(a.get("value", a)) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if url != page.as_uri() and not url.startswith("data:"):
                requests.append(url)
        elif method == "Network.loadingFailed":
            requests.append(f"failed: {params.get('errorText')}")
    return Browsed(errors, requests, fonts, text, title)


# --- hand-made run directories ---------------------------------------------------------------


def weekly_returns(start: str, weeks: int, seed: int = 7) -> pd.DataFrame:
    """Seeded weekly returns of strategy, equal_weight and benchmark, dated on Fridays."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=weeks, freq="W-FRI", name="date")
    return pd.DataFrame(
        {
            "strategy": rng.normal(0.004, 0.03, weeks),
            "equal_weight": rng.normal(0.002, 0.02, weeks),
            "benchmark": rng.normal(0.001, 0.018, weeks),
        },
        index=dates,
    )


def summary_doc(returns: pd.DataFrame, **facts: Any) -> dict[str, Any]:
    """summary.json of ``returns`` (columns strategy, equal_weight, benchmark), ``facts`` on
    top."""
    rf = weekly_risk_free(0.0, pd.DatetimeIndex(returns.index))
    doc: dict[str, Any] = {key: summarize(returns[key], rf) for key in returns.columns}
    doc.update(
        weeks=len(returns),
        start=returns.index[0].date().isoformat(),
        end=returns.index[-1].date().isoformat(),
        fill="next_open",
        risk_free=0.0,
        strategy_name="lstm_signal",
        benchmark_name="SP500",
        data_note="hand-made",
        orders_rejected=0,
    )
    doc.update(facts)
    return doc


def make_run(path: Path, returns: pd.DataFrame, **facts: Any) -> Path:
    """A run directory holding returns.csv and summary.json (see :func:`summary_doc`)."""
    path.mkdir(parents=True)
    out = returns.copy()
    out.index = pd.DatetimeIndex(out.index).strftime("%Y-%m-%d")
    out.to_csv(path / "returns.csv", index_label="date")
    (path / "summary.json").write_text(json.dumps(summary_doc(returns, **facts)), encoding="utf-8")
    return path


# --- the web app -----------------------------------------------------------------------------

#: The token of the apps :func:`served` runs.
TOKEN = "test-token-0123456789abcdef"


def readme_account(workspace: Path, name: str = "demo") -> str:
    """The README's paper account: examples/paper12_equal_weight.toml stepped 4 weeks."""
    config = PAPER_CONFIG.parent / "paper12_equal_weight.toml"
    with accounts.start(workspace, name, load_config(config), source="t"):
        pass
    advance(workspace, name, weeks=4)
    return name


@contextlib.contextmanager
def served(workspace: Path, runs: Path, root: Path, **settings: Any) -> Iterator[str]:
    """The real app of ``foliosim serve`` on a free loopback port, in a thread; yields its
    base URL (``http://127.0.0.1:PORT``). The scheduler is off unless ``schedule=True``."""
    import threading

    import uvicorn

    from simulator.web.app import bind, create_app, server_config
    from simulator.web.site import Settings

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"schedule": False, **settings}
    app = create_app(Settings(workspace, runs, root, TOKEN, port=port, **options))
    server = uvicorn.Server(server_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
