"""Hostile requests against ``foliosim serve`` (issue 24, the web app): a request that names
code, a rule that never answers, symbolic links in the run folder, huge bodies, server paths
in answers. Each test failed before the fix; all run the real app on a loopback port."""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from simulator import accounts
from simulator.config import load_config
from simulator.web.files import read_inside, regular_file
from tests import helpers
from tests.conftest import PAPER12, REPO
from tests.helpers import TOKEN, advance, make_run, require_chromium, served, weekly_returns

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EW_CONFIG = REPO / "examples" / "paper12_equal_weight.toml"

#: A user rule that blocks: it marks that it started, then waits for a release file (at most
#: five minutes, so that a failing test cannot leave it for ever).
SLEEPY = """
import time
from pathlib import Path

from strategies.rule import Decision

HERE = Path(__file__).parent


class Sleepy:
    name = "sleepy"

    def decide(self, week, history, state):
        (HERE / "started").touch()
        end = time.monotonic() + 300
        while not (HERE / "release").exists() and time.monotonic() < end:
            time.sleep(0.05)
        return Decision({})
"""

#: A module whose import alone leaves a mark: it must never be imported for a request.
EVIL = """
from pathlib import Path

Path({marker!r}).write_text("imported")


class Evil:
    name = "evil"

    def decide(self, week, history, state):
        Path({marker!r}).write_text("decided")
        return {{}}
"""


@dataclass(frozen=True)
class Folder:
    """The server's folder: ``ok.toml`` (1/N), ``slow.toml`` (the blocking rule ``module``)."""

    root: Path
    module: str


def config_text(strategy: str = "equal_weight", data: Path = PAPER12) -> str:
    """examples/paper12_equal_weight.toml reading ``data`` with ``strategy``."""
    text = EW_CONFIG.read_text()
    text = text.replace('path = "../shared/data/paper12"', f"path = {str(data)!r}")
    return text.replace('strategy = "equal_weight"', f"strategy = {strategy!r}")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paper12: Path) -> Iterator[Folder]:
    """A folder the server is started in (its configs, its user rule module beside them)."""
    root = tmp_path / "site"
    root.mkdir()
    module = f"sleepy_{uuid.uuid4().hex[:10]}"
    (root / f"{module}.py").write_text(SLEEPY)
    (root / "ok.toml").write_text(config_text())
    (root / "slow.toml").write_text(config_text(f"{module}:Sleepy"))
    monkeypatch.chdir(root)  # as `foliosim serve` run there: a rule module is found beside it
    try:
        yield Folder(root, module)
    finally:
        (root / "release").touch()  # the blocked rules end
        sys.modules.pop(module, None)


def error(response: httpx.Response, status: int, code: str) -> str:
    """The message of a JSON error, checked for its status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.text
    body = response.json()
    assert body["error"]["status"] == status and body["error"]["code"] == code, body
    return str(body["error"]["message"])


# --- a web request never chooses code ---------------------------------------------------------


def test_a_request_cannot_name_a_module_nor_a_config_outside_the_listed_ones(
    folder: Folder, tmp_path: Path, _workspace: Path
) -> None:
    marker = tmp_path / "imported"
    evil = f"evil_{uuid.uuid4().hex[:10]}"
    (folder.root / f"{evil}.py").write_text(EVIL.format(marker=str(marker)))
    outside = tmp_path / "outside.toml"
    outside.write_text(config_text(f"{evil}:Evil"))
    (folder.root / "linked.toml").symlink_to(outside)  # a link out of the folder
    (folder.root / "a" / "b").mkdir(parents=True)
    (folder.root / "a" / "b" / "deep.toml").write_text(config_text(f"{evil}:Evil"))
    (folder.root / ".hidden").mkdir()
    (folder.root / ".hidden" / "x.toml").write_text(config_text(f"{evil}:Evil"))
    naming_code = [
        f"backtest.strategy={evil}:Evil",
        f" backtest.strategy = {evil}:Evil",
        "data.path=/etc",
        "data.source=yahoo",
        "data.tickers=../../etc/passwd",
        "model.registry_uri=sqlite:////tmp/elsewhere.db",
        "model.version=1",
        "report.risk_free=DGS2",
        "profile.exclude=AAPL",
        "strategy.max_weight",  # no value
    ]
    with served(_workspace, tmp_path / "runs", folder.root) as base:
        for item in naming_code:
            params = {"config": "ok.toml", "set": item}
            message = error(httpx.get(f"{base}/api/recommend", params=params), 400, "bad_request")
            assert "the web app takes only strategy.max_weight" in message
            page = httpx.get(f"{base}/recommend", params=params)
            assert page.status_code == 400 and "the web app takes only" in page.text
            # Sent from another site's page: refused as well.
            cross = httpx.get(
                f"{base}/recommend", params=params, headers={"Sec-Fetch-Site": "cross-site"}
            )
            assert cross.status_code == 403
        for config in (str(outside), "../outside.toml", "a/../../outside.toml", "a\\b.toml"):
            params = {"config": config}
            error(httpx.get(f"{base}/api/recommend", params=params), 400, "bad_request")
        for config in ("linked.toml", "a/b/deep.toml", ".hidden/x.toml", "nope.toml"):
            params = {"config": config}
            assert "not one of the configs" in error(
                httpx.get(f"{base}/api/recommend", params=params), 404, "not_found"
            )
        listed = httpx.get(f"{base}/recommend", headers={"Sec-Fetch-Site": "cross-site"}).text
        # Another site may link to the form, not make the server decide for it.
        cross = httpx.get(
            f"{base}/recommend",
            params={"config": "ok.toml"},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert cross.status_code == 403 and "cross-site" in cross.text
        options = re.findall(r'<option value="([^"]+\.toml)"', listed)
        # An override the app takes still works, and the listed config runs.
        params = {"config": "ok.toml", "set": "strategy.max_weight=0.05"}
        doc = httpx.get(f"{base}/api/recommend", params=params, timeout=120)
    assert options == ["ok.toml", "slow.toml"]
    assert not marker.exists(), marker.read_text()
    assert evil not in sys.modules
    assert doc.status_code == 200, doc.text
    weights = [p["weight"] for p in doc.json()["positions"]]
    assert weights and max(abs(w) for w in weights) <= 0.05 + 1e-9


def test_control_characters_in_a_request_are_refused_with_the_form_kept(
    folder: Folder, tmp_path: Path, _workspace: Path
) -> None:
    """Regression: ``set=data.path=a%00b`` was a bare 500 on both endpoints (os.path.realpath
    raises ValueError on a NUL byte). A NUL or any other control character in an override,
    the config, the date or the profile is a 400 with one line; the form comes back."""
    # A config whose own data.path holds a NUL (a TOML escape): its folder is offered to
    # no override, and the other configs' folders still are.
    (folder.root / "nul.toml").write_text(config_text().replace(repr(str(PAPER12)), '"a\\u0000b"'))
    remedy = "holds a control character; give key=value as plain text, one override per set="
    overrides = [
        "data.path=a\x00b",
        "data.path=../paper12\x00",
        "strategy.max_weight=0.05\x00",
        "strategy.gross=\x7f1",
        "data.source=csv\x1b[31m",
        "strategy.max_weight=0.05\rbacktest.strategy=evil:Evil",
        "profile.gross=0.5\nbacktest.strategy=evil:Evil",
    ]
    with served(_workspace, tmp_path / "runs", folder.root) as base:
        for item in overrides:
            params = {"config": "ok.toml", "set": item}
            message = error(httpx.get(f"{base}/api/recommend", params=params), 400, "bad_request")
            assert message == f"set {item!r}: {remedy} (or per line of the form)"
            if "\n" in item or "\r" in item:
                continue  # the form's box splits lines: each line is an override of its own
            page = httpx.get(f"{base}/recommend", params=params)
            assert page.status_code == 400, page.text
            text = html.unescape(page.text)
            assert f"Error 400: set {item!r}: {remedy}" in text
            kept = re.search(r'<textarea name="set"[^>]*>(.*?)</textarea>', page.text, re.S)
            assert kept is not None and html.unescape(kept.group(1)) == item
        # Each line of the form's box is checked: the second is not an override it takes.
        page = httpx.get(
            f"{base}/recommend",
            params={"config": "ok.toml", "set": "profile.gross=0.5\r\nbacktest.strategy=e:E"},
        )
        assert page.status_code == 400
        assert "set 'backtest.strategy=e:E': the web app takes only" in html.unescape(page.text)
        for config in ("a\x00b.toml", "ok.toml\x00", "ok\x00.toml", "\x1b.toml", "ok\n.toml"):
            shown = repr(config)
            message = error(
                httpx.get(f"{base}/api/recommend", params={"config": config}), 400, "bad_request"
            )
            assert message.startswith(f"config {shown}: give one of the configs the server lists")
            page = httpx.get(f"{base}/recommend", params={"config": config})
            assert page.status_code == 400
            assert f"Error 400: config {shown}: give one" in html.unescape(page.text)
        for day in ("2023-01-13\x00", "\x002023-01-13", "2023-01\x1b-13"):
            params = {"config": "ok.toml", "as_of": day}
            error(httpx.get(f"{base}/api/recommend", params=params), 422, "invalid")
            page = httpx.get(f"{base}/recommend", params=params)
            assert page.status_code == 400
            assert (
                f"Error 400: as of {day!r}: give a date as YYYY-MM-DD, or leave it empty"
                in html.unescape(page.text)
            )
        params = {"config": "ok.toml", "profile": "moderate\x00"}
        message = error(httpx.get(f"{base}/api/recommend", params=params), 400, "bad_request")
        assert message.startswith("profile 'moderate\\x00': use one of conservative")
        assert httpx.get(f"{base}/recommend", params=params).status_code == 400
        # The configs' real folder is still offered, and the listed config still runs with it.
        params = {"config": "ok.toml", "set": f"data.path={PAPER12}", "as_of": "2023-01-13"}
        doc = httpx.get(f"{base}/api/recommend", params=params, timeout=120)
        listed = httpx.get(f"{base}/recommend").text
    assert doc.status_code == 200, doc.text
    assert len(doc.json()["positions"]) == 12
    assert re.findall(r'<option value="([^"]+\.toml)"', listed) == [
        "nul.toml",
        "ok.toml",
        "slow.toml",
    ]


# --- a blocking rule: time limits, a bounded pool, SIGTERM ----------------------------------------


@pytest.mark.cpu_seconds(120)
def test_blocking_decisions_leave_every_other_page_answering(
    folder: Folder, tmp_path: Path, _workspace: Path
) -> None:
    # 45 requests that run a rule that never answers (the attack), 4 workers of
    # decisions, a time limit of 6 s.
    slow = {"config": "slow.toml"}
    with (
        served(_workspace, tmp_path / "runs", folder.root, time_limit=6.0) as base,
        ThreadPoolExecutor(45) as pool,
    ):

        def ask(_: int) -> tuple[int, float, httpx.Response]:
            t0 = time.monotonic()
            response = httpx.get(f"{base}/api/recommend", params=slow, timeout=60)
            return response.status_code, time.monotonic() - t0, response

        t0 = time.monotonic()
        asked = [pool.submit(ask, i) for i in range(45)]
        while not (folder.root / "started").exists():
            assert time.monotonic() - t0 < 30, "the rule never started"
            time.sleep(0.05)
        # Every other page and endpoint answers at once meanwhile.
        for path in ("/", "/api/accounts", "/runs", "/api/runs", "/recommend", "/docs"):
            t1 = time.monotonic()
            response = httpx.get(base + path, timeout=10)
            assert response.status_code == 200, (path, response.text)
            assert time.monotonic() - t1 < 3, path
        # A page that needs a decision now is refused at once: every worker is busy.
        t1 = time.monotonic()
        busy = httpx.get(f"{base}/api/recommend", params={"config": "ok.toml"}, timeout=10)
        assert "busy" in error(busy, 503, "overloaded")
        assert time.monotonic() - t1 < 2
        results = [f.result() for f in asked]
        # Over the limit: 504, as JSON; past the pool: 503 at once. Work still stuck keeps its
        # workers: a decision asked now is 503 too.
        after = httpx.get(f"{base}/recommend", params={"config": "ok.toml"}, timeout=10)
        (folder.root / "release").touch()
        t1 = time.monotonic()
        while True:  # the released decisions end, and give their workers back
            freed = httpx.get(f"{base}/api/recommend", params={"config": "ok.toml"}, timeout=120)
            if freed.status_code != 503 or time.monotonic() - t1 > 60:
                break
            time.sleep(0.5)
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [503] * 41 + [504] * 4
    for status, took, response in results:
        if status == 504:
            assert "time limit (6 s)" in error(response, 504, "timeout")
            assert 5.5 < took < 15
        else:
            error(response, 503, "overloaded")
            assert took < 5
    assert after.status_code == 503 and "text/html" in after.headers["content-type"]
    assert freed.status_code == 200, freed.text


def _start_server(folder: Folder, workspace: Path) -> tuple[subprocess.Popen[str], str]:
    """``foliosim serve`` in ``folder`` (a real process), and its base URL."""
    env = {
        **os.environ,
        "FOLIOSIM_WORKSPACE": str(workspace),
        "FOLIOSIM_TOKEN": TOKEN,
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-c", "from simulator.cli import main; main()"]
    proc = subprocess.Popen(
        [*argv, "serve", "--port", "0", "--no-schedule", "--time-limit", "600"],
        cwd=folder.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.match(r"foliosim serve: (http://127\.0\.0\.1:\d+)/", line)
    assert found, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
    return proc, found.group(1)


@pytest.mark.cpu_seconds(120)
def test_sigterm_stops_the_server_with_decisions_stuck(folder: Folder, _workspace: Path) -> None:
    proc, base = _start_server(folder, _workspace)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/accounts", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.2)

        def ask(_: int) -> str:
            try:
                return str(httpx.get(f"{base}/recommend?config=slow.toml", timeout=60).status_code)
            except httpx.TransportError as err:
                return type(err).__name__

        with ThreadPoolExecutor(3) as pool:
            asked = [pool.submit(ask, i) for i in range(3)]
            while not (folder.root / "started").exists():
                assert time.monotonic() < deadline, "the rule never started"
                time.sleep(0.05)
            time.sleep(0.5)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pytest.fail("foliosim serve still runs 20 s after SIGTERM")
            took = time.monotonic() - t0
            answers = [f.result() for f in asked]
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert took < 10, took
    assert "Traceback" not in err, err
    assert len(answers) == 3  # each request was answered or cut, none hangs


# --- symbolic links in the run folder -------------------------------------------------------------


def test_symlinks_in_the_run_folder_are_never_served(
    folder: Folder, tmp_path: Path, _workspace: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET: the server's own file")
    runs = tmp_path / "runs"
    fine = make_run(runs / "fine", weekly_returns("2023-01-06", 20))
    (fine / "tearsheet.html").write_text("<html><body>tear sheet</body></html>")
    leak = make_run(runs / "leak", weekly_returns("2023-01-06", 20))
    (leak / "tearsheet.html").symlink_to(secret)
    passwd = make_run(runs / "passwd", weekly_returns("2023-01-06", 20))
    (passwd / "tearsheet.html").symlink_to("/etc/passwd")
    elsewhere = make_run(tmp_path / "elsewhere", weekly_returns("2023-01-06", 20))
    (elsewhere / "tearsheet.html").write_text("TOP SECRET: a run outside the run folder")
    (runs / "linked").symlink_to(elsewhere, target_is_directory=True)
    piped = make_run(runs / "piped", weekly_returns("2023-01-06", 20))
    os.mkfifo(piped / "tearsheet.html")  # opening it for reading would wait for a writer
    with served(_workspace, runs, folder.root) as base:
        sheet = httpx.get(f"{base}/runs/fine/tearsheet.html")
        refused = {
            name: httpx.get(f"{base}/runs/{name}/tearsheet.html", timeout=10)
            for name in ("leak", "passwd", "linked", "piped")
        }
        page = httpx.get(f"{base}/runs").text
        listed = [row["run"] for row in httpx.get(f"{base}/api/runs").json()]
    assert sheet.status_code == 200 and sheet.text == "<html><body>tear sheet</body></html>"
    for name, response in refused.items():
        assert response.status_code == 404, (name, response.text[:200])
        assert "TOP SECRET" not in response.text and "root:" not in response.text
    assert 'href="/runs/fine/tearsheet.html"' in page
    for name in ("leak", "passwd", "linked", "piped"):
        assert f'href="/runs/{name}/' not in page
    assert "linked" not in listed and "fine" in listed


def test_file_reads_follow_no_link_below_their_folder(tmp_path: Path) -> None:
    card = tmp_path / "card.md"
    card.write_text("a model card")
    version = tmp_path / "version"
    version.mkdir()
    (version / "model_card.md").symlink_to(card)
    (version / "real.md").write_text("x" * 100)
    assert read_inside(version, "model_card.md", limit=1000) is None
    assert read_inside(version, "real.md", limit=10) == "x" * 10
    assert regular_file(tmp_path, "version", "real.md")
    (tmp_path / "alias").symlink_to(version, target_is_directory=True)
    assert not regular_file(tmp_path, "alias", "real.md")
    for parts in (("..", "card.md"), ("version/real.md",), ("",), ("version", ".")):
        assert not regular_file(tmp_path, *parts)


# --- request bodies ---------------------------------------------------------------------------


def _raw(base: str, head: str, chunks: list[bytes]) -> tuple[int, str]:
    """Send a request by hand (head, then the body's pieces as they go) and read the answer:
    its status and body."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest: what it said is read below
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 60:
            got = sock.recv(65536)
            if not got:
                break
            data += got
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2].decode(errors="replace")


def test_a_request_body_over_one_megabyte_is_refused(
    folder: Folder, tmp_path: Path, _workspace: Path
) -> None:
    path = "/api/accounts/nope/step"
    common = (
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
    )
    with served(_workspace, tmp_path / "runs", folder.root) as base:
        t0 = time.monotonic()
        # 200 MB announced: refused on the header, before the body is read.
        head = f"POST {path} HTTP/1.1\r\n{common}Content-Length: 200000000\r\n\r\n"
        status, body = _raw(base, head, [b" " * 65536])
        assert status == 413 and '"code":"too_large"' in body, body
        assert time.monotonic() - t0 < 5
        # No length (chunked): refused once the bytes read pass the limit.
        head = f"POST {path} HTTP/1.1\r\n{common}Transfer-Encoding: chunked\r\n\r\n"
        piece = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        status, body = _raw(base, head, [piece] * 17)
        assert status == 413 and '"code":"too_large"' in body, body
        # A chunked body that is not JSON is refused as a form would be.
        head = f"POST {path} HTTP/1.1\r\n" + common.replace("application/json", "text/plain")
        status, body = _raw(
            base, head + "Transfer-Encoding: chunked\r\n\r\n", [b"2\r\n{}\r\n0\r\n\r\n"]
        )
        assert status == 415, body
        # Under the limit the request goes on (to its own error: no such account).
        json_type = {**AUTH, "Content-Type": "application/json"}
        small = httpx.post(base + path, headers=json_type, content=b" " * 1000 + b"{}")
    error(small, 404, "not_found")


# --- server paths -----------------------------------------------------------------------------


def test_no_answer_shows_a_server_path(
    folder: Folder, tmp_path: Path, _workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the account's data path is relative to the checkout
    with accounts.start(_workspace, "demo", load_config(EW_CONFIG), source=str(EW_CONFIG)):
        pass
    advance(_workspace, "demo", weeks=2)
    (folder.root / "bad.toml").write_text(config_text(data=tmp_path / "no-such-data"))
    runs = tmp_path / "runs"
    make_run(runs / "fine", weekly_returns("2023-01-06", 20))
    (runs / "broken").mkdir()
    (runs / "broken" / "summary.json").write_text("{not json")
    forbidden = {str(tmp_path), os.path.realpath(tmp_path), str(REPO), str(REPO.parent)}
    home = os.path.expanduser("~")
    if home not in ("/", "~"):
        forbidden.add(home)
    with served(_workspace, runs, folder.root) as base:
        answers = {
            path: httpx.get(base + path, timeout=120)
            for path in (
                "/api/accounts",
                "/api/accounts/demo",
                "/api/accounts/nope",
                "/api/models",
                "/api/runs",
                "/api/recommend?config=bad.toml",
                "/api/recommend?config=../x.toml",
                "/api/recommend?config=nope.toml",
                "/recommend?config=bad.toml",
                "/runs/nope/tearsheet.html",
                "/runs",
                "/models",
                "/accounts/demo",
                "/",
            )
        }
    demo = answers["/api/accounts/demo"].json()
    assert demo["config_source"] == "examples/paper12_equal_weight.toml"  # relative to cwd
    assert answers["/api/recommend?config=bad.toml"].status_code == 422
    for path, response in answers.items():
        for root in forbidden:
            assert root not in response.text, (path, root, response.text[:500])


# --- a missing browser fails the browser tests ----------------------------------------------------


def test_a_missing_chromium_fails_and_no_test_skips_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "CHROMIUM", tmp_path / "no-chromium")
    with pytest.raises(pytest.fail.Exception, match="no-chromium is missing"):
        require_chromium()
    skips = [
        f"{path.name}:{n}"
        for path in sorted((REPO / "tests").glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"pytest\.(skip|mark\.skipif)\b.*chrom", line, re.IGNORECASE)
    ]
    assert skips == []
