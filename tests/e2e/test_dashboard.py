"""The dashboard (`GET /ui`) in a real headless Chromium, against a real API that wants a token
and real managers: tasks seen live, retry and cancel from their buttons, the endpoints, the
token form, and untrusted text shown as text. Screenshots go to var/screenshots/."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, update

from tasker.storage.models import EndpointRegistration, OutputChunk, TaskResponse
from tests.helpers import ROOT, Api, Process, consumers, unique, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 19170
TOKEN = "dashboard-token-0123456789"
API_ENV = {"TASKER_TEST_API_AUTH": "tokens", "TASKER_TEST_API_TOKENS": TOKEN}
SCREENSHOTS = ROOT / "var" / "screenshots"
# Every manager the module needs: (task type, endpoint).
MANAGERS = [("sleeper", "dash-a"), ("chatty", "dash-a"), ("chatty", "dash-b"), ("horse", "dash-a")]
# Markup in untrusted text: shown as text, it creates no element and runs nothing.
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"


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
    api: Api
    url: str
    process: Process  # the API's, replaced when a test restarts it


@pytest.fixture(scope="module")
def dashboard(cluster, browser):
    """An API that wants a token, and the managers of MANAGERS (started side by side)."""
    for task_type, endpoint in MANAGERS:
        cluster.manager(endpoint, task_type, wait=False)
    process, api = cluster.api(PORT, env=API_ENV, token=TOKEN)
    vhost = cluster.env.get("TASKER_TEST_VHOST", "tasker_test")
    for task_type, endpoint in MANAGERS:
        queue = "tasker.%s.%s" % (task_type, endpoint)
        wait_for(lambda queue=queue: consumers(vhost, queue) > 0, 30, 0.1, "%s to consume its queue" % queue)
    return Dashboard(api, "http://127.0.0.1:%d/ui" % PORT, process)


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
    opened = open_page(browser)
    yield opened
    assert opened.errors == [], "JavaScript errors on the page"
    assert opened.dialogs == [], "dialogs opened"
    opened.context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def named(prefix: str) -> str:
    """An identifier that reads well in a screenshot, unique in the session."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:4])


def row(page, endpoint: str):
    return page.locator('#responses tr.response[data-endpoint="%s"]' % endpoint)


def test_a_task_is_seen_going_from_queued_to_succeeded_without_a_reload(dashboard, page, cluster):
    from playwright.sync_api import expect

    identifier = unique("live")
    page.goto(dashboard.url + "#/tasks/sleeper")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("window.__sameDocument = true")
    body = {"identifier": identifier, "payload": {"seconds": 1}, "endpoints": ["dash-a", "dash-late"]}
    assert dashboard.api.post("sleeper", body).status == 201
    listed = page.locator('#task-list tr[data-identifier="%s"]' % identifier)
    expect(listed).to_be_visible()  # the list is live: the new task came in through the events
    listed.locator("a").click()
    # Record every state each row shows, as the page changes it.
    page.evaluate(
        """window.__seen = [];
        new MutationObserver(() => document.querySelectorAll('#responses tr.response').forEach((tr) => {
            const seen = tr.dataset.endpoint + ' ' + tr.querySelector('.state').textContent;
            if (window.__seen.at(-1) !== seen) window.__seen.push(seen);
        })).observe(document.getElementById('responses'), {subtree: true, childList: true, characterData: true});"""
    )
    expect(row(page, "dash-late").locator(".state")).to_have_text("queued")  # no manager serves it yet
    expect(row(page, "dash-a").locator(".state")).to_have_text("succeeded")
    cluster.manager("dash-late", "sleeper")
    expect(row(page, "dash-late").locator(".state")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#task-status .badge")).to_have_text("DONE")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    late = [seen.split()[1] for seen in page.evaluate("window.__seen") if seen.startswith("dash-late ")]
    assert late[-1] == "succeeded" and "queued" in late[: late.index("succeeded")], late


def test_a_failed_endpoint_is_retried_from_its_retry_button_and_its_output_opens(dashboard, page, tmp_path):
    from playwright.sync_api import expect

    identifier = named("deploy-web-1.4.2")
    payload = {"fail_first": True, "dir": str(tmp_path), "bytes": 20}
    body = {"identifier": identifier, "payload": payload, "endpoints": ["dash-a", "dash-b"]}
    assert dashboard.api.post("chatty", body).status == 201
    dashboard.api.wait_status("chatty", identifier, ("DONE",))
    page.goto(dashboard.url + "#/task/chatty/" + identifier)
    expect(row(page, "dash-a").locator(".state")).to_have_text("failed")

    row(page, "dash-a").locator(".retry-button").click()
    expect(row(page, "dash-a")).to_have_attribute("data-run", "2")  # a new run appeared
    expect(row(page, "dash-a").locator(".state")).to_have_text("succeeded")
    expect(row(page, "dash-b").locator(".state")).to_have_text("failed")  # not selected: untouched
    details = page.locator('tr.response-details[data-endpoint="dash-a"]')
    expect(details.locator("details.runs summary")).to_have_text("1 earlier run")

    row(page, "dash-a").locator(".output-button").click()
    expect(page.locator("#output-text")).to_contain_text("chatty: logged\n" + "x" * 20)  # what run 2 wrote
    page.click("#output-close")
    details.locator("details.runs summary").click()
    details.locator('tr[data-run="1"] button').click()
    expect(page.locator("#output-text")).to_contain_text("first run")
    page.click("#output-close")

    page.click("#retry-failed")
    expect(row(page, "dash-b").locator(".state")).to_have_text("succeeded")
    expect(page.locator("#task-counts")).to_have_text("2 succeeded")  # the task read again, settled
    expect(page.locator("#retry-failed")).to_be_disabled()
    read = dashboard.api.request("GET", "/chatty/%s?runs=all" % identifier).json
    responses = {response["endpoint"]: response for response in read["taskResponseList"]}
    assert [(r["run"], r["state"]) for r in responses["dash-a"]["runs"]] == [(1, "failed")]
    assert (responses["dash-a"]["run"], responses["dash-b"]["run"]) == (2, 3), "runs are numbered per task"
    screenshot(page, "dashboard-task.png")


def test_a_running_task_is_cancelled_from_its_cancel_button(dashboard, page):
    from playwright.sync_api import expect

    identifier = unique("cancel")
    body = {"identifier": identifier, "payload": {"do": "cooperative"}, "endpoints": ["dash-a"]}
    assert dashboard.api.post("horse", body).status == 201
    page.goto(dashboard.url + "#/task/horse/" + identifier)
    expect(row(page, "dash-a").locator(".state")).to_have_text("running")
    expect(row(page, "dash-a").locator(".progress")).to_contain_text("waiting")  # its progress message
    page.click("#cancel-task")
    expect(page.locator("#cancel-task")).to_have_text("Really cancel?")  # one click alone does nothing
    assert dashboard.api.response("horse", identifier, "dash-a")["state"] == "running"
    page.click("#cancel-task")
    expect(row(page, "dash-a").locator(".state")).to_have_text("cancelled")
    expect(page.locator("#task-status .badge")).to_have_text("CANCELLED")
    expect(page.locator("#cancel-task")).to_be_disabled()
    assert dashboard.api.response("horse", identifier, "dash-a")["state"] == "cancelled"


def test_the_endpoints_page_shows_the_alive_endpoints(dashboard, page):
    from playwright.sync_api import expect

    page.goto(dashboard.url + "#/endpoints")
    for task_type, endpoint in MANAGERS:
        listed = page.locator('#endpoint-list tr[data-type="%s"][data-endpoint="%s"]' % (task_type, endpoint))
        expect(listed.locator(".liveness")).to_have_text("alive")
    page.select_option("#view select", "chatty")
    expect(page.locator('#endpoint-list tr[data-type="horse"]')).to_have_count(0)  # chatty's only
    expect(page.locator('#endpoint-list tr[data-type="chatty"][data-endpoint="dash-b"]')).to_be_visible()
    expect(page.locator("#endpoint-summary")).to_contain_text(" alive")
    page.goto(dashboard.url + "#/endpoints")
    expect(page.locator("#endpoint-list tbody tr").first).to_be_visible()
    screenshot(page, "dashboard-endpoints.png")


def test_with_tokens_required_the_page_asks_for_one_and_then_works(dashboard, browser):
    from playwright.sync_api import expect

    page = open_page(browser, token=None)
    try:
        page.goto(dashboard.url + "#/tasks/chatty")
        expect(page.locator("#token-dialog")).to_be_visible()
        page.fill("#token-input", "not-the-token")
        page.click("#token-submit")
        expect(page.locator("#token-error")).to_be_visible()  # refused: asked again
        page.fill("#token-input", TOKEN)
        page.click("#token-submit")
        expect(page.locator("#token-dialog")).to_be_hidden()
        expect(page.locator("#task-list tbody tr").first).to_be_visible()
        expect(page.locator("#live")).to_have_attribute("data-state", "live")  # the stream sends it too
        assert page.evaluate("sessionStorage.getItem('tasker.token')") == TOKEN
        assert TOKEN not in page.url
        assert page.errors == [] and page.dialogs == []
    finally:
        page.context.close()


def test_untrusted_text_is_shown_as_text_and_runs_nothing(dashboard, page, database):
    from playwright.sync_api import expect

    identifier = unique("markup")
    hostile = IMG + SCRIPT
    body = {"identifier": identifier, "payload": {"do": "print", "note": hostile}, "endpoints": ["dash-a"]}
    created = dashboard.api.post("horse", body)
    assert created.status == 201, created
    dashboard.api.wait_status("horse", identifier, ("DONE",))
    task_id = created.json["id"]
    # What a handler can make its response say: its errmsg, progress message, payload and output.
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    with database.transaction() as session:
        this = (TaskResponse.task_id == task_id) & (TaskResponse.endpoint == "dash-a")
        values = {"errnr": 9, "errmsg": hostile, "progress": 50.0, "progress_message": IMG, "output_tail": hostile}
        session.execute(update(TaskResponse).where(this).values(payload=json.dumps(hostile), **values))
        chunk = (OutputChunk.task_id == task_id) & (OutputChunk.endpoint == "dash-a")
        session.execute(update(OutputChunk).where(chunk).values(chunk=hostile + "\n"))
        times = {"registered_time": now, "last_seen_time": now}
        session.add(EndpointRegistration(type="horse", endpoint="dash-markup", host=hostile, version=IMG, **times))
    try:
        page.goto(dashboard.url + "#/task/horse/" + identifier)
        expect(row(page, "dash-a").locator(".result")).to_contain_text("errnr 9: " + hostile)
        expect(row(page, "dash-a").locator(".progress")).to_contain_text(IMG)
        expect(page.locator('tr.response-details[data-endpoint="dash-a"] pre')).to_have_text(hostile)
        page.click("details.payload summary")
        expect(page.locator("#task-payload")).to_contain_text(hostile)
        row(page, "dash-a").locator(".output-button").click()
        expect(page.locator("#output-text")).to_have_text(hostile + "\n")
        assert page.locator("main img, main script, dialog img, dialog script").count() == 0
        page.click("#output-close")
        page.goto(dashboard.url + "#/endpoints?type=horse")
        listed = page.locator('#endpoint-list tr[data-endpoint="dash-markup"]')
        expect(listed).to_contain_text(hostile)
        expect(listed).to_contain_text(IMG)
        assert page.locator("main img, main script").count() == 0
        assert page.evaluate("window.__violations") == [], "markup was parsed (and stopped by the CSP)"
    finally:
        with database.transaction() as session:
            session.execute(delete(EndpointRegistration).where(EndpointRegistration.endpoint == "dash-markup"))


def test_the_task_list_filters_by_state_and_pages_with_next(dashboard, page, tmp_path):
    from playwright.sync_api import expect

    api = dashboard.api
    tasks = [
        (named("nightly-backup"), {"bytes": 80}, ["dash-a", "dash-b"]),
        (named("deploy-api-2.7.0"), {"fail_first": True, "dir": str(tmp_path), "bytes": 10}, ["dash-a", "dash-b"]),
        (named("rotate-logs"), {"bytes": 10}, ["dash-a"]),
        (named("deploy-web-1.4.3"), {"seconds": 3, "bytes": 10}, ["dash-a", "dash-b"]),
        (named("restart-cache"), {}, ["dash-a", "dash-offline"]),
    ]
    for identifier, payload, endpoints in tasks:
        assert api.post("chatty", {"identifier": identifier, "payload": payload, "endpoints": endpoints}).status == 201
    failed = tasks[1][0]
    api.wait_status("chatty", failed, ("DONE",))
    page.goto(dashboard.url + "#/tasks/chatty")
    expect(page.locator('#task-list tr[data-identifier="%s"] .counts' % failed)).to_have_text("2 failed")
    expect(page.locator('#task-list tr[data-identifier="%s"] .counts' % tasks[3][0])).to_contain_text("running")
    screenshot(page, "dashboard-tasks.png")

    page.select_option('#filters select[name="state"]', "failed")
    page.click('#filters button[type="submit"]')
    expect(page.locator("#task-list tbody tr").first).to_have_attribute("data-identifier", failed)
    listed = page.locator("#task-list tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.identifier)")
    assert failed in listed and tasks[0][0] not in listed and "state=failed" in page.url

    # 52 tasks of a type no other test lists: a full page of 50, then the rest behind `next`.
    prefix = named("page")
    for number in range(52):
        body = {"identifier": "%s-%02d" % (prefix, number), "endpoints": ["dash-nobody"]}
        assert api.post("backup", body).status == 201
    page.goto(dashboard.url + "#/tasks/backup?identifier=" + prefix)
    expect(page.locator("#task-list tbody tr")).to_have_count(50)
    expect(page.locator("#task-list tbody tr").first).to_have_attribute("data-identifier", prefix + "-51")
    page.click("#older")
    expect(page.locator("#task-list tbody tr")).to_have_count(2)
    expect(page.locator("#task-list tbody tr").last).to_have_attribute("data-identifier", prefix + "-00")


def test_an_event_reset_makes_the_page_read_the_task_again(dashboard, page):
    from playwright.sync_api import expect

    identifier = unique("reset")
    body = {"identifier": identifier, "payload": {"seconds": 0}, "endpoints": ["dash-a"]}
    assert dashboard.api.post("sleeper", body).status == 201
    dashboard.api.wait_status("sleeper", identifier, ("DONE",))
    reads, streams = [], []
    page.on("request", lambda r: reads.append(r.url) if "runs=all" in r.url else None)
    page.on("request", lambda r: streams.append(r.headers.get("last-event-id")) if "/events?" in r.url else None)
    reset = 'id: 99999999999\nevent: reset\ndata: {"reason": "events after 1 are no longer kept"}\n\n'
    page.route("**/events?*", lambda route: route.fulfill(status=200, content_type="text/event-stream", body=reset))
    page.goto(dashboard.url + "#/task/sleeper/" + identifier)
    expect(row(page, "dash-a").locator(".state")).to_have_text("succeeded")
    # Playwright hands events over while it works: wait in the page, not in time.sleep.
    wait_for(lambda: page.wait_for_timeout(100) or len(reads) >= 3, 10, 0, "the task read again after each reset")
    assert streams[0] is None and "99999999999" in streams[1:], "a reconnect names the reset's id"


def test_after_the_api_restarts_the_page_reconnects_and_catches_up(dashboard, page, cluster):
    from playwright.sync_api import expect

    identifier = unique("restart")
    streams = []
    page.on("request", lambda r: streams.append(r.headers.get("last-event-id")) if "/events?" in r.url else None)
    page.goto(dashboard.url + "#/task/sleeper/" + identifier)  # before the task exists: its events will come
    expect(page.locator("#notice")).to_contain_text("No sleeper task")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    body = {"identifier": identifier, "payload": {"seconds": 2.5}, "endpoints": ["dash-a"]}
    assert dashboard.api.post("sleeper", body).status == 201
    expect(row(page, "dash-a").locator(".state")).to_have_text("running")  # told by the stream
    expect(page.locator("#notice")).to_be_hidden()
    dashboard.process.stop()
    expect(page.locator("#live")).to_have_attribute("data-state", "retrying")
    dashboard.process = cluster.api(PORT, env=API_ENV, token=TOKEN)[0]
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=20_000)
    expect(row(page, "dash-a").locator(".state")).to_have_text("succeeded")
    assert streams[0] is None and streams[-1] and streams[-1].isdigit(), streams  # resumed after the last event
