"""The dashboard in a real headless Chromium, for what it must refuse or keep inert: the token
form, untrusted text shown as text, and hash routes that cannot lead the page's calls (and its
token) outside the API's routes."""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import delete, update

from tasker.storage.models import EndpointRegistration, OutputChunk, TaskResponse
from tests.e2e.dashboard_browser import TOKEN, browser, open_page, page, row, start_dashboard
from tests.helpers import unique

__all__ = ["browser", "page"]  # fixtures of dashboard_browser, which the tests take by name
pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 19172
MANAGERS = [("horse", "dash-a")]
# Markup in untrusted text: shown as text, it creates no element and runs nothing.
IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
# Routes that name no task of a configured type, nor any other page.
NOT_PAGES = {
    "#/task/../..": 'No task type ".." here',
    "#/task/worker/..%2F..": '"../.." is not an identifier',
    "#/task/worker/..": '".." is not an identifier',  # the API's rule allows it; a URL resolves it away
    "#/task/worker/" + "x" * 51: "is not an identifier",
    "#/task/nosuchtype/x": 'No task type "nosuchtype" here',
    "#/tasks/endpoints": 'No task type "endpoints" here',  # a route of the API, not a type
    "#/tasks/metrics": 'No task type "metrics" here',
    "#/endpoints?type=..%2Fmetrics": 'No task type "../metrics" here',
    "#/task/worker/x/output": "No such page",
    "#/elsewhere": "No such page",
}


@pytest.fixture(scope="module")
def dashboard(cluster, browser):
    """An API that wants a token, and the manager of MANAGERS."""
    return start_dashboard(cluster, PORT, MANAGERS)


def api_routes(task_types: list[str]) -> re.Pattern:
    """The paths of the API the dashboard may call: its own files, the stream, the endpoints,
    and the tasks of a configured type."""
    name = r"[A-Za-z0-9._:-]{1,50}"
    tasks = r"(%s)(/%s(/(output|retry|cancel))?)?" % ("|".join(task_types), name)
    return re.compile(r"^/(ui|ui/static/[^/]+|events|endpoints|%s)$" % tasks)


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


def test_routes_that_name_no_task_show_not_found_and_no_call_leaves_the_apis_routes(dashboard, page, test_config):
    from playwright.sync_api import expect

    sent = []
    page.on("request", lambda request: sent.append((request.url, request.headers.get("authorization"))))
    for route, message in NOT_PAGES.items():
        page.goto(dashboard.url + "#/tasks/sleeper")  # a page that calls the API, between each
        expect(page.locator("#task-list")).to_be_visible()
        page.goto(dashboard.url + route)
        expect(page.locator("#not-found")).to_contain_text(message)
        expect(page.locator("#live")).to_have_attribute("data-state", "off")
    page.goto(dashboard.url + "#/task/worker/x")  # a task that does not exist is the API's to say
    expect(page.locator("#notice")).to_contain_text("No worker task x")
    routes = api_routes(list(test_config.task_types))
    origin = "127.0.0.1:%d" % PORT
    outside = [url for url, _ in sent if urlsplit(url).netloc != origin or not routes.match(urlsplit(url).path)]
    assert outside == [], "calls outside the API's routes"
    with_token = [urlsplit(url).path for url, token in sent if token]
    assert with_token and all(token == "Bearer " + TOKEN for _, token in sent if token)
    assert not [path for path in with_token if path.startswith("/ui")], "the token goes to the API's data only"
    assert "/events" in with_token and "/worker/x" in with_token


def test_a_malformed_address_shows_not_found_and_the_page_stays_live(dashboard, page):
    from playwright.sync_api import expect

    page.goto(dashboard.url + "#/tasks/sleeper")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.goto(dashboard.url + "#/task/sleeper/%E0%A4%A")  # a percent escape cut short
    expect(page.locator("#not-found")).to_contain_text("malformed")
    expect(page.locator("#live")).to_have_attribute("data-state", "off")  # the list's stream stopped
    page.goto(dashboard.url + "#/tasks/sleeper")
    expect(page.locator("#task-list")).to_be_visible()
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
