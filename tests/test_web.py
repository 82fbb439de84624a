"""``foliosim serve``: the JSON API on a loopback port, its security rules, its errors, and
the scheduler of weekly accounts (the pages in a real browser: test_web_browser.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import html
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest

from models.forecaster import train
from models.registry import Registry
from simulator import accounts
from simulator.backtest import run_backtest
from simulator.config import load_config
from simulator.plan import resolve
from simulator.recommend import recommend
from simulator.summary import nan_to_none
from simulator.web import scheduler
from simulator.web.api import StepRequest
from simulator.web.site import Settings, Site
from tests.conftest import PAPER_CONFIG, PAPER_FAST, REPO, PaperModel
from tests.helpers import (
    EQUAL,
    TOKEN,
    assert_journal_is_the_backtest,
    cli,
    error_line,
    ew_config,
    make_run,
    open_new,
    readme_account,
    served,
    sets,
    weekly_returns,
)
from tests.model_data import TRAIN_END, tiny, walk_closes
from tests.test_runs import TRIALS, make_sweep

AUTH = {"Authorization": f"Bearer {TOKEN}"}
AS_OF = dt.date(2023, 1, 13)
EW_CONFIG = REPO / "examples" / "paper12_equal_weight.toml"


@pytest.fixture
def account(_workspace: Path, paper12: Path) -> str:
    """The README's paper account: examples/paper12_equal_weight.toml stepped 4 weeks."""
    return readme_account(_workspace)


@pytest.fixture
def base(_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(REPO)  # configs' data paths are relative to where serve runs
    with served(_workspace, tmp_path / "runs", REPO) as url:
        yield url


def weeks_of(workspace: Path, name: str) -> int:
    with accounts.open_account(workspace, name) as acct:
        return acct.journal.count()


def error(response: httpx.Response, status: int, code: str) -> str:
    """The message of a JSON error, checked for its status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status, body
    assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


def test_api_reads_what_the_command_line_reads(account: str, base: str, _workspace: Path) -> None:
    listed = httpx.get(f"{base}/api/accounts").json()
    rows = [r.model_dump(mode="json") for r in accounts.list_accounts(_workspace)]
    assert listed == json.loads(json.dumps(rows))
    assert [r["account"] for r in listed] == ["demo"] and listed[0]["schedule"] == "off"
    doc = httpx.get(f"{base}/api/accounts/demo").json()
    with accounts.open_account(_workspace, "demo") as acct:
        expected = accounts.status(acct).model_dump(mode="json")
    expected.pop("journal")
    assert doc == {**json.loads(json.dumps(expected)), "schedule_log": []}
    assert doc["last_week"] == "2022-07-15" and doc["weeks_processed"] == 4


def test_a_step_needs_the_token_and_records_the_next_week(
    account: str, base: str, _workspace: Path
) -> None:
    url = f"{base}/api/accounts/demo/step"
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}):
        response = httpx.post(url, headers=headers)
        error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"
    assert weeks_of(_workspace, "demo") == 4  # nothing was recorded
    response = httpx.post(url, headers=AUTH, json={"weeks": 2})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["recorded"] == ["2022-07-22", "2022-07-29"]
    assert doc["status"]["last_week"] == "2022-07-29" and doc["status"]["weeks_processed"] == 6
    assert weeks_of(_workspace, "demo") == 6
    # No body: one week, as `replay step`.
    assert httpx.post(url, headers=AUTH).json()["recorded"] == ["2022-08-05"]


def test_cross_site_requests_are_refused(account: str, base: str, _workspace: Path) -> None:
    url = f"{base}/api/accounts/demo/step"
    evil = httpx.post(url, headers={**AUTH, "Origin": "http://evil.example"}, json={})
    assert "http://evil.example" in error(evil, 403, "cross_site")
    for site in ("cross-site", "same-site"):
        error(httpx.post(url, headers={**AUTH, "Sec-Fetch-Site": site}), 403, "cross_site")
        # Reads are refused too: another site's page cannot make the server work for it.
        error(
            httpx.get(f"{base}/api/accounts", headers={"Sec-Fetch-Site": site}), 403, "cross_site"
        )
    bare = httpx.post(url, headers=AUTH, content=b"weeks=1")  # a body without a type
    error(bare, 415, "unsupported_media_type")
    plain = httpx.post(url, headers={**AUTH, "Content-Type": "text/plain"}, content=b'{"weeks": 1}')
    error(plain, 415, "unsupported_media_type")
    urlencoded = httpx.post(url, headers=AUTH, data={"weeks": "1"})
    error(urlencoded, 415, "unsupported_media_type")
    error(httpx.get(f"{base}/api/accounts", headers={"Host": "attacker.example"}), 400, "bad_host")
    # The same origin is accepted.
    same = httpx.post(url, headers={**AUTH, "Origin": base, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200, same.text


def test_bad_input_gets_a_json_error_with_its_status(
    account: str, base: str, _workspace: Path
) -> None:
    assert "no paper account 'nope'" in error(
        httpx.get(f"{base}/api/accounts/nope"), 404, "not_found"
    )
    error(httpx.post(f"{base}/api/accounts/nope/step", headers=AUTH), 404, "not_found")
    for name in ("..", ".hidden", "a b", "<script>alert(1)</script>", "x" * 65, "demo\n"):
        response = httpx.get(f"{base}/api/accounts/{quote(name, safe='')}")
        assert response.status_code in (400, 404), (name, response.text)
        assert response.json()["error"]["status"] == response.status_code
    assert "account name '<script>" in error(
        httpx.get(f"{base}/api/accounts/%3Cscript%3E"), 400, "bad_request"
    )
    # Encoded slashes and dots never reach a file outside the workspace.
    for path in ("/api/accounts/..%2F..%2Fetc%2Fpasswd", "/api/accounts/%2e%2e"):
        assert httpx.get(base + path).status_code in (400, 404)
    step = f"{base}/api/accounts/demo/step"
    assert "weeks" in error(httpx.post(step, headers=AUTH, json={"weeks": 0}), 422, "invalid")
    error(
        httpx.post(step, headers=AUTH, json={"weeks": 1, "until": "2022-09-02"}), 400, "bad_request"
    )
    error(httpx.post(step, headers=AUTH, json={"week": 1}), 422, "invalid")
    error(httpx.post(step, headers=AUTH, json={"until": "not a date"}), 422, "invalid")
    live = httpx.post(step, headers=AUTH, json={"live": True})
    assert "data.source is 'csv'" in error(live, 400, "bad_request")
    assert weeks_of(_workspace, "demo") == 4  # nothing was recorded by any of them
    recommend_url = f"{base}/api/recommend"
    for config in ("../shared/x.toml", "/etc/passwd", "pyproject.toml/..", "README.md"):
        error(httpx.get(recommend_url, params={"config": config}), 400, "bad_request")
    error(httpx.get(recommend_url, params={"config": "nope.toml"}), 404, "not_found")
    error(httpx.get(recommend_url), 422, "invalid")
    bad_profile = httpx.get(
        recommend_url, params={"config": "examples/paper2023.toml", "profile": "/etc/x"}
    )
    assert "conservative" in error(bad_profile, 400, "bad_request")
    script = httpx.get(
        recommend_url,
        params={"config": "examples/paper12_equal_weight.toml", "set": "data.tickers=<script>"},
    )
    assert "<script>" in error(script, 400, "bad_request")
    error(httpx.get(f"{base}/api/nothing-here"), 404, "not_found")


@contextlib.contextmanager
def lock_held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that holds the account's lock (a CLI step in progress), killed (SIGKILL)
    on leaving."""
    code = (
        "import sys, time; from pathlib import Path; from simulator.journal import locked\n"
        "with locked(Path(sys.argv[1]), 'account'):\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_a_step_while_another_runs_is_409_and_a_stale_lock_does_not_block(
    account: str, base: str, _workspace: Path
) -> None:
    path = accounts.journal_path(_workspace, "demo")
    with lock_held(path) as holder:
        busy = httpx.post(f"{base}/api/accounts/demo/step", headers=AUTH)
        assert f"(pid {holder.pid})" in error(busy, 409, "busy")
        assert weeks_of(_workspace, "demo") == 4
        # Reads go on while the account is being changed.
        assert httpx.get(f"{base}/api/accounts/demo").status_code == 200
    # The killed holder left its lock file, with its pid: the OS released the lock itself.
    lock = path.with_name(path.name + ".lock")
    assert lock.read_text().strip() == str(holder.pid)
    response = httpx.post(f"{base}/api/accounts/demo/step", headers=AUTH)
    assert response.status_code == 200 and response.json()["recorded"] == ["2022-07-22"]


def test_fifty_concurrent_reads_all_succeed(account: str, base: str) -> None:
    def read(i: int) -> int:
        path = "/api/accounts/demo" if i % 2 else "/api/accounts"
        return httpx.get(base + path, timeout=60).status_code

    with ThreadPoolExecutor(50) as pool:
        assert list(pool.map(read, range(50))) == [200] * 50


@pytest.mark.cpu_seconds(60)
def test_recommend_api_equals_the_command_line(base: str, _workspace: Path, paper12: Path) -> None:
    params = {"config": "examples/paper12_equal_weight.toml", "profile": "moderate"}
    doc = httpx.get(f"{base}/api/recommend", params=params, timeout=120).json()
    expected = recommend(load_config(EW_CONFIG), _workspace, "moderate").to_json()
    assert doc == json.loads(json.dumps(nan_to_none(expected)))
    assert doc["profile"]["name"] == "moderate" and doc["positions"]


def test_models_api_lists_the_registry(paper_model: PaperModel, tmp_path: Path) -> None:
    from simulator.training import open_registry

    registry = open_registry(paper_model.workspace)
    with served(paper_model.workspace, tmp_path / "runs", REPO) as url:
        doc = httpx.get(f"{url}/api/models", timeout=60).json()
        card = httpx.get(f"{url}/models/{paper_model.ref}", timeout=60)
        error(httpx.get(f"{url}/api/recommend", params={"config": "x.toml"}), 404, "not_found")
        missing = httpx.get(f"{url}/models/paper-small/99")
    # The registry's address names the workspace, not its server path.
    assert registry.uri == f"sqlite:///{paper_model.workspace}/mlflow.db"
    assert doc == {
        "registry": "sqlite:///[workspace]/mlflow.db",
        "versions": [v.describe() for v in registry.versions()],
    }
    assert [v["name"] for v in doc["versions"]] == ["paper-small"]
    assert card.status_code == 200 and "<h1>paper-small/1</h1>" in card.text
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_models_pages_show_seeds_and_tags_and_render_the_card_safely(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    registry = Registry(workspace)

    def register(seed: int) -> None:
        spec = dataclasses.replace(tiny(seed=seed), name="sw")
        registry.register(*train(walk_closes(), spec, TRAIN_END))

    register(0)
    register(1)
    card = registry.artifact_dir(registry.get("sw", 1)) / "model_card.md"
    card.write_text(card.read_text() + "\n<script>alert(1)</script>\n\n**bold**\n")
    # A version registered before seeds were tagged: its seed is its training run's parameter.
    registry.client.delete_model_version_tag("sw", "1", "seed")
    with served(workspace, tmp_path / "runs", REPO) as url:
        listed = httpx.get(f"{url}/models", timeout=60)
        register(2)  # the store changed: the next page lists again
        again = httpx.get(f"{url}/models", timeout=60).text
        page = httpx.get(f"{url}/models/sw/1", timeout=60).text
    assert [v.describe()["seed"] for v in registry.versions()] == [0, 1, 2]
    row = r'href="/models/sw/{}">sw/{}</a></td>\s*<td></td><td class="num">{}</td>'
    assert re.search(row.format(1, 1, 0), listed.text) and re.search(
        row.format(2, 2, 1), listed.text
    )
    assert "sw/3" not in listed.text and re.search(row.format(3, 3, 2), again)
    assert "lstm, window 8, close, mse" in listed.text
    # The card is rendered: its title, bold text and training table; the script is text.
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<strong>bold</strong>" in page and '<div id="model-card">' in page
    assert "<table>" in page and "<th>best epoch</th>" in page
    assert "<td>seed</td><td><code>0</code></td>" in page
    assert "<td>train_end</td><td><code>2020-07-10</code></td>" in page


def test_runs_api_and_tear_sheets(base: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = make_run(runs / "lstm_signal-20240105-120000", weekly_returns("2023-01-06", 60))
    (run / "tearsheet.html").write_text("<html><body>tear sheet</body></html>")
    make_run(runs / "no-sheet", weekly_returns("2023-01-06", 10))
    rows = httpx.get(f"{base}/api/runs").json()
    assert [r["run"] for r in rows] == ["lstm_signal-20240105-120000", "no-sheet"]
    assert all("path" not in r for r in rows)
    sheet = httpx.get(f"{base}/runs/lstm_signal-20240105-120000/tearsheet.html")
    assert sheet.status_code == 200 and sheet.text.endswith("tear sheet</body></html>")
    assert sheet.headers["content-security-policy"].startswith("sandbox;")
    missing = httpx.get(f"{base}/runs/no-sheet/tearsheet.html")
    assert missing.status_code == 404
    assert "no run directory &#39;no-sheet&#39; with a tear sheet in the run folder" in missing.text
    for path in ("/runs/..%2F..%2Fpasswd/tearsheet.html", "/runs/..%2Fruns/tearsheet.html"):
        assert httpx.get(base + path).status_code in (400, 404)
    page = httpx.get(f"{base}/runs")
    assert 'href="/runs/lstm_signal-20240105-120000/tearsheet.html"' in page.text
    assert 'href="/runs/no-sheet/' not in page.text


def test_runs_page_lists_sweeps_with_their_reports(base: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs / "a-run", weekly_returns("2023-01-06", 20))
    sweep = make_sweep(runs / "sweep-paper-0123456789", tmp_path, TRIALS)
    (sweep / "sweep.html").write_text("<html><body>sweep report</body></html>")
    make_sweep(runs / "sweep-running", tmp_path, {})  # no report yet
    linked = make_sweep(runs / "sweep-linked", tmp_path, {})
    (tmp_path / "secret.html").write_text("secret")
    (linked / "sweep.html").symlink_to(tmp_path / "secret.html")
    rows = httpx.get(f"{base}/api/runs").json()
    assert [(r["run"], r["kind"]) for r in rows] == [
        ("a-run", "backtest"),
        ("sweep-linked", "sweep"),
        ("sweep-paper-0123456789", "sweep"),
        ("sweep-running", "sweep"),
    ]
    assert rows[2]["trials_done"] == 3 and rows[2]["trials_total"] == 5
    assert all("path" not in r for r in rows)
    report = httpx.get(f"{base}/runs/sweep-paper-0123456789/sweep.html")
    assert report.status_code == 200 and report.text.endswith("sweep report</body></html>")
    assert report.headers["content-security-policy"].startswith("sandbox;")
    for name in ("sweep-running", "sweep-linked", "a-run", "..%2Fsecret"):
        assert httpx.get(f"{base}/runs/{name}/sweep.html").status_code in (400, 404), name
    missing = httpx.get(f"{base}/runs/sweep-running/sweep.html")
    assert "no sweep &#39;sweep-running&#39; with a report in the run folder" in missing.text
    bad = httpx.get(f"{base}/runs/-x/sweep.html")
    assert bad.status_code == 400 and "sweep name &#39;-x&#39;: use letters" in bad.text
    page = httpx.get(f"{base}/runs").text
    assert 'href="/runs/sweep-paper-0123456789/sweep.html"' in page
    assert "lstm_signal (sweep)" in page and "3/5 trials, 1 failed" in page
    assert "/runs/sweep-running/" not in page and "/runs/sweep-linked/" not in page


def test_openapi_documents_the_api_and_the_token(base: str) -> None:
    schema = httpx.get(f"{base}/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/accounts",
        "/api/accounts/{name}",
        "/api/accounts/{name}/step",
        "/api/recommend",
        "/api/models",
        "/api/runs",
    }
    step = schema["paths"]["/api/accounts/{name}/step"]["post"]
    assert step["security"] == [{"HTTPBearer": []}]
    assert {"401", "409"} <= set(step["responses"])
    docs = httpx.get(f"{base}/docs")
    assert docs.status_code == 200 and "POST /api/accounts/{name}/step" in docs.text
    assert "cdn" not in docs.text.lower()


def test_pages_carry_the_security_headers(account: str, base: str) -> None:
    page = httpx.get(f"{base}/accounts/demo")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    plotly = httpx.get(f"{base}/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert 'src="/static/vendor/plotly.min.js"' in page.text and "https://" not in page.text


# --- the scheduler ------------------------------------------------------------------------------


def _ny(day: str, time: str) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=ZoneInfo("America/New_York"))


def test_closed_week_is_the_friday_after_the_new_york_close() -> None:
    assert scheduler.closed_week(_ny("2024-06-07", "16:29")).date() == dt.date(2024, 5, 31)
    assert scheduler.closed_week(_ny("2024-06-07", "16:30")).date() == dt.date(2024, 6, 7)
    assert scheduler.closed_week(_ny("2024-06-10", "09:00")).date() == dt.date(2024, 6, 7)
    # Good Friday 2023: the market closed on Thursday; the week is the Friday's.
    assert scheduler.closed_week(_ny("2023-04-08", "12:00")).date() == dt.date(2023, 4, 7)


def test_the_scheduler_steps_a_weekly_account_once_per_closed_week_and_logs_it(
    _workspace: Path, paper12: Path
) -> None:
    cfg = ew_config("data.end=2022-08-05", "backtest.end=2022-08-05")
    open_new(_workspace, "weekly", cfg, schedule="weekly")
    open_new(_workspace, "by-hand", cfg)
    now = [_ny("2024-06-08", "10:00")]
    sched = scheduler.Scheduler(_workspace, clock=lambda: now[0])
    done = sched.tick()
    assert list(done) == ["weekly"]  # the account stepped by hand is left alone
    [entry] = done["weekly"]
    assert entry["action"] == "step" and entry["outcome"] == "ok"
    assert entry["for_week"] == "2024-06-07"
    assert entry["weeks"] == [
        d.date().isoformat() for d in pd.date_range("2022-07-01", "2022-08-05", freq="W-FRI")
    ]
    assert sched.tick() == {}  # done for this closed week
    now[0] = _ny("2024-06-14", "17:00")
    [again] = sched.tick()["weekly"]
    assert again["outcome"] == "nothing to do" and again["weeks"] == []
    assert scheduler.read_log(_workspace, "weekly") == [entry, again]
    with accounts.open_account(_workspace, "by-hand") as acct:
        assert acct.journal.count() == 0
    with served(_workspace, _workspace / "runs", REPO) as url:
        doc = httpx.get(f"{url}/api/accounts/weekly").json()
        page = httpx.get(f"{url}/accounts/weekly").text
    assert doc["schedule"] == "weekly" and doc["schedule_log"] == [entry, again]
    # The page lists the actions newest first, each with its outcome.
    assert page.index('class="outcome-nothing-to-do"') < page.index('class="outcome-ok"')
    assert "recorded 6 week(s)" in page


def test_a_busy_account_is_logged_and_tried_at_the_next_tick(
    _workspace: Path, paper12: Path
) -> None:
    open_new(
        _workspace,
        "weekly",
        ew_config("data.end=2022-07-15", "backtest.end=2022-07-15"),
        schedule="weekly",
    )
    now = _ny("2024-06-08", "10:00")
    with lock_held(accounts.journal_path(_workspace, "weekly")) as holder:
        [busy] = scheduler.Scheduler(_workspace, clock=lambda: now).tick()["weekly"]
    assert busy["outcome"] == "busy" and f"pid {holder.pid}" in busy["detail"]
    [ok] = scheduler.Scheduler(_workspace, clock=lambda: now).tick()["weekly"]
    assert ok["outcome"] == "ok" and ok["weeks"] == ["2022-07-01", "2022-07-08", "2022-07-15"]


def test_a_failed_attempt_is_tried_again_an_hour_later(_workspace: Path, paper12: Path) -> None:
    open_new(_workspace, "weekly", ew_config(), schedule="weekly")
    week = "2024-06-07"
    failed = {
        "action": "step",
        "for_week": week,
        "outcome": "error",
        "at": "2024-06-08T14:00:00+00:00",
    }
    with accounts.open_account(_workspace, "weekly") as acct:
        assert scheduler.due(acct, [], _ny("2024-06-08", "10:00"))
        assert not scheduler.due(acct, [failed], dt.datetime(2024, 6, 8, 14, 59, tzinfo=dt.UTC))
        assert scheduler.due(acct, [failed], dt.datetime(2024, 6, 8, 15, 0, tzinfo=dt.UTC))
        # Before the start week: nothing to do yet.
        assert not scheduler.due(acct, [], _ny("2022-06-10", "18:00"))


@pytest.mark.cpu_seconds(400)  # trains two small versions (12 tickers, 3 epochs each)
def test_a_scheduled_account_retrains_as_the_walk_forward_backtest(
    paper_model: PaperModel, tmp_path: Path
) -> None:
    workspace = paper_model.workspace
    extra = ["model.retrain_every=4", "backtest.end=2022-09-09", "data.end=2022-09-09"]
    cfg = load_config(PAPER_CONFIG, [*PAPER_FAST, *extra])
    result = run_backtest(resolve(cfg), workspace)
    open_new(workspace, "retrained", cfg, schedule="weekly")
    sched = scheduler.Scheduler(workspace, clock=lambda: _ny("2024-06-08", "10:00"))
    entries = sched.tick()["retrained"]
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("step", "ok"),
        ("retrain", "ok"),
        ("step", "ok"),
        ("retrain", "ok"),
        ("step", "ok"),
    ]
    assert [len(e["weeks"]) for e in entries] == [4, 0, 4, 0, 3]
    with accounts.open_account(workspace, "retrained") as acct:
        assert_journal_is_the_backtest(acct.journal, result)
        doc = accounts.status(acct).model_dump(mode="json")
    used = [(m.version, m.train_end) for m in result.summary.models]
    assert [(m["version"], m["train_end"]) for m in doc["models"]] == used
    # The account's last week decided too (its orders are pending): one decision more.
    assert [m.decisions for m in result.summary.models] == [4, 4, 2]
    assert [m["decisions"] for m in doc["models"]] == [4, 4, 3]
    assert entries[1]["detail"] == f"pinned {used[1][0]} (trained up to {used[1][1]})"


# --- the command line -----------------------------------------------------------------------------


def test_schedule_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], paper12: Path
) -> None:
    start = ["replay", "start", str(PAPER_CONFIG), "--account", "a", *sets(EQUAL)]
    assert cli([*start, "--schedule", "weekly"], monkeypatch) == 0
    assert "(fill close), schedule weekly" in capsys.readouterr().out

    def schedule() -> str:
        assert cli(["replay", "status", "--account", "a", "--json"], monkeypatch) == 0
        return str(json.loads(capsys.readouterr().out)["schedule"])

    assert schedule() == "weekly"
    assert cli(["replay", "schedule", "--account", "a", "off"], monkeypatch) == 0
    assert capsys.readouterr().out == "account a: schedule off\n"
    assert schedule() == "off"
    assert cli(["replay", "schedule", "--account", "a", "daily"], monkeypatch) == 2
    assert error_line(capsys) == "error: schedule 'daily': use one of off, weekly"
    assert cli(["replay", "schedule", "--account", "nope", "weekly"], monkeypatch) == 2
    assert "no paper account 'nope'" in error_line(capsys)
    assert cli([*start[:4], "b", *sets(EQUAL), "--schedule", "hourly"], monkeypatch) == 2
    assert error_line(capsys) == "error: schedule 'hourly': use one of off, weekly"


def test_serve_refuses_a_port_in_use_and_a_short_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulator.web.app import bind

    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        assert cli(["serve", "--port", str(port)], monkeypatch) == 2
    line = error_line(capsys)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port} (Address already in use)")
    monkeypatch.setenv("FOLIOSIM_TOKEN", "short")
    assert cli(["serve", "--port", "0"], monkeypatch) == 2
    assert "FOLIOSIM_TOKEN is 5 characters long; use at least 16" in error_line(capsys)


# --- the recommend form, its config list, /docs (issue 26) -------------------------------------


def _form(page: str) -> tuple[str, str]:
    """The override box's text and the error beside the form (empty without one)."""
    box = re.search(r'<textarea name="set"[^>]*>(.*?)</textarea>', page, re.S)
    problem = re.search(r'<p class="error" id="recommend-error"[^>]*>(.*?)</p>', page, re.S)
    assert box is not None, page
    return html.unescape(box.group(1)), html.unescape(problem.group(1)) if problem else ""


@pytest.mark.cpu_seconds(60)
def test_recommend_form_takes_several_overrides_and_keeps_the_form_on_errors(
    tmp_path: Path, _workspace: Path, monkeypatch: pytest.MonkeyPatch, paper12: Path
) -> None:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.chdir(root)  # data paths are relative to where serve runs
    data = os.path.relpath(paper12, root)
    ew = EW_CONFIG.read_text().replace('"../shared/data/paper12"', f"{data!r}")
    (root / "ew.toml").write_text(ew)
    # As examples/paper2023.toml: Yahoo prices, so offline it needs two overrides.
    (root / "yahoo.toml").write_text(ew.replace('source = "csv"', 'source = "yahoo"'))
    offline = f"data.source=csv\ndata.path={data}"
    with served(_workspace, tmp_path / "runs", root) as base:
        params = {"config": "yahoo.toml", "profile": "moderate", "as_of": "2023-01-13"}
        page = httpx.get(f"{base}/recommend", params={**params, "set": offline}, timeout=120)
        assert page.status_code == 200, page.text
        assert _form(page.text) == (offline, "")
        assert '<option value="moderate" selected>' in page.text
        assert '<option value="yahoo.toml" selected>' in page.text
        both = httpx.get(f"{base}/api/recommend", params={**params, "set": offline.split()})
        expected = recommend(
            load_config(root / "yahoo.toml", offline.split()), _workspace, "moderate", AS_OF
        )
        assert both.json() == json.loads(json.dumps(nan_to_none(expected.to_json())))
        # An override the app does not take, a folder no config reads, a malformed date, a
        # config not listed: the form comes back as sent, the message beside it.
        refused = f"{offline}\nbacktest.strategy=examples.momentum_rule:MomentumRule"
        page = httpx.get(f"{base}/recommend", params={**params, "set": refused})
        assert page.status_code == 400 and _form(page.text)[0] == refused
        assert (
            "set 'backtest.strategy=examples.momentum_rule:MomentumRule': the web app takes"
            in (_form(page.text)[1])
        )
        for folder in ("/etc", os.path.dirname(data)):
            page = httpx.get(f"{base}/recommend", params={**params, "set": f"data.path={folder}"})
            assert page.status_code == 400 and f"({data})" in _form(page.text)[1]
        page = httpx.get(f"{base}/recommend", params={**params, "as_of": "2023-13-01"})
        assert page.status_code == 400 and 'value="2023-13-01"' in page.text
        assert _form(page.text)[1] == (
            "Error 400: as of '2023-13-01': give a date as YYYY-MM-DD, or leave it empty"
        )
        page = httpx.get(f"{base}/recommend", params={**params, "config": "nope.toml"})
        assert page.status_code == 404 and "not one of the configs" in _form(page.text)[1]
        assert '<textarea name="set"' in page.text
        # Several limits, one per line (or repeated, as the API takes them): the 1/N of 12
        # names at gross 50% is 4.17% each, over the 4% cap: 48% held, 52% cash.
        limits = ["strategy.gross=0.5", "strategy.max_weight=0.04"]
        ew_params = {"config": "ew.toml", "as_of": "2023-01-13"}
        page = httpx.get(
            f"{base}/recommend", params={**ew_params, "set": "\n".join(limits)}, timeout=120
        )
        doc = httpx.get(f"{base}/api/recommend", params={**ew_params, "set": limits}).json()
    assert page.status_code == 200, page.text
    assert _form(page.text) == ("\n".join(limits), "")
    expected = recommend(load_config(root / "ew.toml", limits), _workspace, None, AS_OF)
    assert doc == json.loads(json.dumps(nan_to_none(expected.to_json())))
    assert [p["weight"] for p in doc["positions"]] == [0.04] * 12
    assert doc["cash_note"] == "cash 52.0% = 100% - 48.0% held long"
    assert f'<p id="cash-note">{doc["cash_note"]}</p>' in page.text
    assert f'<p id="rule">{html.escape(doc["rule"])}</p>' in page.text


def test_the_config_list_shows_only_run_configs_and_what_each_runs(
    tmp_path: Path, _workspace: Path, monkeypatch: pytest.MonkeyPatch, paper12: Path
) -> None:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    monkeypatch.chdir(root)
    ew = EW_CONFIG.read_text().replace('"../shared/data/paper12"', repr(str(paper12)))
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (root / "broken.toml").write_text("[data\n")
    (root / "ew.toml").write_text(ew)
    # A training config (foliosim train's): no backtest.strategy, so not a run config, though
    # it validates (it would recommend the default, 1/N).
    lstm = (REPO / "examples" / "paper12_lstm.toml").read_text()
    assert "strategy" not in tomllib.loads(lstm).get("backtest", {})
    (root / "sub" / "lstm.toml").write_text(lstm.replace("../shared/data/paper12", str(paper12)))
    momentum = ew.replace('"equal_weight"', '"examples.momentum_rule:MomentumRule"')
    (root / "sub" / "momentum.toml").write_text(momentum)
    signal = ew.replace('strategy = "equal_weight"', 'strategy = "lstm_signal"')
    with served(_workspace, tmp_path / "runs", root) as url:
        page = httpx.get(f"{url}/recommend").text
        options = re.findall(r'<option value="([^"]+\.toml)"[^>]*>([^<]*)</option>', page)
        missing = httpx.get(f"{url}/api/recommend", params={"config": "pyproject.toml"})
        training = httpx.get(f"{url}/api/recommend", params={"config": "sub/lstm.toml"})
        # A file changed under the server is read again (the list is kept by mtime and size).
        (root / "ew.toml").write_text(signal)
        (root / "sub" / "lstm.toml").write_text(
            lstm.replace("[backtest]", '[backtest]\nstrategy = "equal_weight"')
        )
        again = re.findall(
            r'<option value="([^"]+\.toml)"[^>]*>([^<]*)</option>',
            httpx.get(f"{url}/recommend").text,
        )
    assert [(path, html.unescape(text)) for path, text in options] == [
        (
            "ew.toml",
            "ew.toml — 1/N: recommends equal weights · every ticker of its data · CSV files",
        ),
        (
            "sub/momentum.toml",
            "sub/momentum.toml — user rule examples.momentum_rule:MomentumRule · every ticker "
            "of its data · CSV files",
        ),
    ]
    assert "not one of the configs" in error(missing, 404, "not_found")
    assert "not one of the configs" in error(training, 404, "not_found")
    assert [(p, html.unescape(t)) for p, t in again] == [
        (
            "ew.toml",
            "ew.toml — LSTM signal (model foliosim-lstm) · every ticker of its data · CSV files",
        ),
        (
            "sub/lstm.toml",
            # Naming its strategy makes it a run config: 1/N, said explicitly.
            "sub/lstm.toml — 1/N: recommends equal weights · 12 tickers · CSV files",
        ),
        (
            "sub/momentum.toml",
            "sub/momentum.toml — user rule examples.momentum_rule:MomentumRule · every ticker "
            "of its data · CSV files",
        ),
    ]


def test_the_checkout_offers_its_run_configs_and_not_the_training_config() -> None:
    """The configs foliosim ships, as ``foliosim serve`` started in the checkout lists them:
    each names its strategy; examples/paper12_lstm.toml (``foliosim train``'s) is not one."""
    site = Site(Settings(Path("/nonexistent/ws"), REPO / "runs", REPO, TOKEN))
    listed = [(c.path, c.strategy, c.runs) for c in site.run_configs()]
    assert listed == [
        (
            "examples/momentum.toml",
            "examples.momentum_rule:MomentumRule",
            "user rule examples.momentum_rule:MomentumRule · 12 tickers · CSV files",
        ),
        (
            "examples/paper12_equal_weight.toml",
            "equal_weight",
            "1/N: recommends equal weights · every ticker of its data · CSV files",
        ),
        (
            "examples/paper2023.toml",
            "lstm_signal",
            "LSTM signal (model paper2023) · 12 tickers · Yahoo prices (needs a network)",
        ),
    ]
    # The demo config (bundled data, two folders down) names its strategy as well.
    demo = Site(Settings(Path("/nonexistent/ws"), REPO / "runs", REPO / "simulator", TOKEN))
    assert [(c.path, c.strategy) for c in demo.run_configs()] == [
        ("configs/demo.toml", "lstm_signal")
    ]


def test_docs_show_example_bodies_from_the_request_model(
    account: str, base: str, _workspace: Path
) -> None:
    docs = httpx.get(f"{base}/docs").text
    schema = httpx.get(f"{base}/openapi.json").json()
    examples = schema["components"]["schemas"]["StepRequest"]["examples"]
    assert examples == [{"weeks": 2}, {"until": "2023-06-23"}, {"live": True}, {}]
    step = docs[docs.index("POST /api/accounts/{name}/step") :]
    step = step[: step.index("</section>")]
    shown = [html.unescape(x) for x in re.findall(r'<pre class="example"><code>(.*?)</code>', step)]
    assert shown[:-1] == [json.dumps(x) for x in examples]
    assert shown[-1] == (
        'curl -s -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" '
        "-d '{\"weeks\": 2}' http://127.0.0.1:8765/api/accounts/{name}/step"
    )
    assert "<code>weeks</code> (integer 1..2600 or null): How many weeks to step" in step
    for example in examples:  # each is a body the endpoint validates
        StepRequest.model_validate(example)
    # The first, sent as the page says: two weeks recorded.
    response = httpx.post(f"{base}/api/accounts/demo/step", headers=AUTH, json=examples[0])
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] == ["2022-07-22", "2022-07-29"]
    # GET endpoints have no body to show.
    recommend_part = docs[docs.index("GET /api/recommend") :]
    assert "JSON body" not in recommend_part[: recommend_part.index("</section>")]
