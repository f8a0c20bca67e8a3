"""What the dashboard's browser tests share: the system's Chromium driven by Playwright, an API
that wants a token with managers beside it, and a page per test that records JavaScript errors,
dialogs and Content-Security-Policy violations. Screenshots go to var/screenshots/."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass

import pytest

from tests.helpers import ROOT, Api, Cluster, Process, consumers, wait_for

TOKEN = "dashboard-token-0123456789"
API_ENV = {"TASKER_TEST_API_AUTH": "tokens", "TASKER_TEST_API_TOKENS": TOKEN}
SCREENSHOTS = ROOT / "var" / "screenshots"


def chromium_path() -> str | None:
    """Debian's Chromium binary (`/usr/bin/chromium` is a shell wrapper around it), or another."""
    candidates = [os.environ.get("TASKER_TEST_CHROMIUM"), "/usr/lib/chromium/chromium"]
    candidates += [shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")]
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


def missing(what: str) -> None:
    """A missing browser skips these tests locally and fails them under CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        missing("no Chromium found (apt-get install chromium, or set TASKER_TEST_CHROMIUM)")
    expect.set_options(timeout=10_000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, headless=True)
        yield launched
        launched.close()


@dataclass
class Dashboard:
    """The API a module's pages talk to."""

    api: Api
    url: str
    process: Process  # the API's, replaced when a test restarts it


def start_dashboard(cluster: Cluster, port: int, managers: list[tuple[str, str]]) -> Dashboard:
    """An API on `port` that wants TOKEN, and a manager per (task type, endpoint), started side by side."""
    for task_type, endpoint in managers:
        cluster.manager(endpoint, task_type, wait=False)
    process, api = cluster.api(port, env=API_ENV, token=TOKEN)
    vhost = cluster.env.get("TASKER_TEST_VHOST", "tasker_test")
    for task_type, endpoint in managers:
        queue = "tasker.%s.%s" % (task_type, endpoint)
        wait_for(lambda queue=queue: consumers(vhost, queue) > 0, 30, 0.1, "%s to consume its queue" % queue)
    return Dashboard(api, "http://127.0.0.1:%d/ui" % port, process)


def open_page(browser, token: str | None = TOKEN):
    """A page in a fresh context (the token already in sessionStorage, unless None), recording
    JavaScript errors, dialogs and Content-Security-Policy violations."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    script = "window.__violations = []; document.addEventListener('securitypolicyviolation',"
    script += " (event) => window.__violations.push(event.violatedDirective));"
    if token:
        script += "sessionStorage.setItem('tasker.token', %s);" % json.dumps(token)
    context.add_init_script(script)
    page = context.new_page()
    page.errors, page.dialogs = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    return page


@pytest.fixture
def page(browser, dashboard):
    """A page with the token, that must end the test without JavaScript errors or dialogs."""
    opened = open_page(browser)
    yield opened
    assert opened.errors == [], "JavaScript errors on the page"
    assert opened.dialogs == [], "dialogs opened"
    opened.context.close()


def screenshot(page, name: str) -> None:
    """The whole page, to var/screenshots/<name>."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def named(prefix: str) -> str:
    """An identifier that reads well in a screenshot, unique in the session."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:4])


def row(page, endpoint: str):
    """The row of `endpoint` on a task's page."""
    return page.locator('#responses tr.response[data-endpoint="%s"]' % endpoint)


def settle(page) -> None:
    """Let the page run what its events queued (one round trip to it)."""
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 0))")
