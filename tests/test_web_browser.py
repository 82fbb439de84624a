"""``foliosim serve`` in a real browser: Playwright driving Debian's chromium (no browser
download; ``make test`` installs chromium). The accounts page steps an account and shows the
new week; a tear sheet loads with no console error and no failed request; hostile names and
tickers are refused or shown as text. The README's screenshot is taken here (set
``FOLIOSIM_SCREENSHOT=docs/serve.png`` to write it)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from simulator import accounts
from tests.conftest import REPO
from tests.helpers import CHROMIUM, TOKEN, cli, readme_account, require_chromium, served

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

EW_CONFIG = REPO / "examples" / "paper12_equal_weight.toml"
#: Flags for chromium as root in a container, with no GPU.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """What a page reported: console errors and uncaught exceptions, failed requests and
    responses with an error status, and dialogs (an injected ``alert`` would open one)."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def watch(page: Page) -> Watched:
    seen = Watched()
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("requestfailed", lambda r: seen.failed.append(f"{r.url}: {r.failure}"))
    page.on(
        "response", lambda r: seen.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )

    def dialog(d: Any) -> None:
        seen.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    return seen


@pytest.fixture
def account(_workspace: Path, paper12: Path) -> str:
    """The README's paper account: examples/paper12_equal_weight.toml stepped 4 weeks."""
    return readme_account(_workspace)


@pytest.fixture
def base(_workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.chdir(REPO)
    with served(_workspace, tmp_path / "runs", REPO) as url:
        yield url


def test_the_accounts_page_steps_an_account_and_shows_the_new_week(
    browser: Browser, account: str, base: str, _workspace: Path, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    seen = watch(page)
    # Without the token the step is refused, and the page says so.
    page.goto(f"{base}/accounts/demo")
    page.click("#step-button")
    page.wait_for_selector("#step-result:has-text('error 401')")
    assert seen.failed == [f"401 {base}/api/accounts/demo/step"]
    assert [e for e in seen.errors if "401" not in e] == []
    seen.failed.clear()
    seen.errors.clear()
    # The address printed at start carries the token; the page keeps it and drops it.
    page.goto(f"{base}/#token={TOKEN}")
    assert page.url == f"{base}/"
    page.click("#accounts a:text-is('demo')")
    page.wait_for_selector("#equity-chart .main-svg")
    assert page.inner_text("#last-week") == "2022-07-15"
    traces = page.evaluate("document.getElementById('equity-chart').data.map(t => t.name)")
    assert traces == ["account", "1/N", "index (IXIC)"]
    page.fill("#step-form input[name=weeks]", "20")
    page.click("#step-button")
    page.wait_for_selector("#last-week:text-is('2022-12-02')")
    assert page.inner_text("#weeks-processed") == "24"
    weeks = page.evaluate("document.getElementById('equity-chart').data[0].x.length")
    assert weeks == 24
    with accounts.open_account(_workspace, "demo") as acct:
        assert acct.journal.count() == 24
    assert page.locator("#orders tbody tr").count() > 0
    assert seen.errors == [] and seen.failed == [] and seen.dialogs == []
    page.screenshot(path=str(tmp_path / "serve.png"))
    target = os.environ.get("FOLIOSIM_SCREENSHOT")
    if target:
        page.screenshot(path=str(REPO / target))
    page.close()


@pytest.mark.cpu_seconds(300)  # a real backtest and its QuantStats tear sheet
def test_a_tear_sheet_loads_with_no_console_error_and_no_failed_request(
    browser: Browser, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, paper12: Path
) -> None:
    out = tmp_path / "runs" / "paper12-ew"
    assert cli(["backtest", str(EW_CONFIG), "--out", str(out)], monkeypatch) == 0
    page = browser.new_page()
    seen = watch(page)
    page.goto(f"{base}/runs")
    with page.expect_navigation():
        page.click("#runs a:text-is('paper12-ew')")
    assert page.url == f"{base}/runs/paper12-ew/tearsheet.html"
    page.wait_for_load_state("load")
    assert "foliosim" in page.inner_text("#foliosim h1")
    assert page.locator("img").count() > 3
    assert seen.errors == [] and seen.failed == [] and seen.dialogs == []
    page.close()


def test_hostile_names_and_tickers_are_refused_or_shown_as_text(
    browser: Browser, account: str, base: str, _workspace: Path
) -> None:
    page = browser.new_page()
    seen = watch(page)
    script = "<script>alert(1)</script>"
    name = "<img src=x onerror=alert(1)>"
    response = page.goto(f"{base}/accounts/{quote(name, safe='')}")
    assert response is not None and response.status == 400
    assert f"account name {name!r}" in page.inner_text("#error-message")
    # A name with a slash is no route at all.
    response = page.goto(f"{base}/accounts/{quote(script, safe='')}")
    assert response is not None and response.status == 404
    response = page.goto(
        f"{base}/recommend?config=examples/paper12_equal_weight.toml&set=data.tickers={script}"
    )
    assert response is not None and response.status == 400
    # The form comes back as sent, the message beside it: both text, never markup.
    assert "data.tickers" in page.inner_text("#recommend-error")
    assert script in page.inner_text("#recommend-error")
    assert page.input_value("#overrides") == f"data.tickers={script}"
    # A journal edited to hold a script-bearing ticker: every cell is text, the chart too.
    hostile = '<img src=x onerror="alert(2)">'
    path = accounts.journal_path(_workspace, "demo")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE holdings SET ticker = ? WHERE ticker = 'AAPL'", (hostile,))
        conn.execute("UPDATE targets SET ticker = ? WHERE ticker = 'AAPL'", (hostile,))
        conn.execute("UPDATE orders SET ticker = ? WHERE ticker = 'AAPL'", (hostile,))
    conn.close()
    seen.failed.clear()
    seen.errors.clear()  # the console's lines of the 400 and 404 above
    page.goto(f"{base}/accounts/demo")
    page.wait_for_selector("#weights-chart .main-svg")
    assert hostile in page.inner_text("#positions")
    assert hostile in page.inner_text("#targets")
    assert page.locator("img[src=x]").count() == 0
    assert seen.dialogs == [] and seen.errors == [] and seen.failed == []
    page.close()
