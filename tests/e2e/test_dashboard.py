"""The dashboard (`GET /ui`) in a real headless Chromium, against a real API that wants a token
and real managers: tasks seen live, retry and cancel from their buttons, a run's output, the
endpoints, the filters and pages of the list, and the event stream's reconnects. Screenshots go
to var/screenshots/. tests/e2e/test_dashboard_security.py has the token form, untrusted text and
the routes."""

from __future__ import annotations

import pytest

from tests.e2e.dashboard_browser import API_ENV, TOKEN, browser, named, page, row, screenshot, settle, start_dashboard
from tests.helpers import unique, wait_for

__all__ = ["browser", "page"]  # fixtures of dashboard_browser, which the tests take by name
pytestmark = [pytest.mark.integration, pytest.mark.e2e]
PORT = 19170
# Every manager the module needs: (task type, endpoint).
MANAGERS = [("sleeper", "dash-a"), ("chatty", "dash-a"), ("chatty", "dash-b"), ("horse", "dash-a")]


@pytest.fixture(scope="module")
def dashboard(cluster, browser):
    """An API that wants a token, and the managers of MANAGERS."""
    return start_dashboard(cluster, PORT, MANAGERS)


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


def test_a_stream_that_ends_at_once_is_opened_again_later_each_time(dashboard, page):
    from playwright.sync_api import expect

    # A proxy with a short idle timeout, say: the stream opens, sends nothing, ends.
    page.route("**/events?*", lambda route: route.fulfill(status=200, content_type="text/event-stream", body=""))
    page.add_init_script(
        """window.__retries = [];
        let shown = '';
        new MutationObserver(() => {
            const text = document.getElementById('live')?.textContent ?? '';
            if (text !== shown && text.startsWith('reconnecting')) window.__retries.push(text);
            shown = text;
        }).observe(document, {subtree: true, childList: true, characterData: true});"""
    )
    page.goto(dashboard.url + "#/tasks/sleeper")
    expect(page.locator("#task-list")).to_be_visible()
    retries = wait_for(
        lambda: page.wait_for_timeout(100) or page.evaluate("window.__retries.length >= 3 && window.__retries"),
        20,
        0,
        "three reconnects",
    )
    seconds = [int(text.split()[2]) for text in retries[:3]]
    # 1, 2, then 4 s, each with up to 20 % of jitter, as after any failure.
    assert seconds[0] == 1 and seconds[1] == 2 and 3 <= seconds[2] <= 5, retries


def test_the_output_dialog_shows_the_last_output_opened_and_revokes_its_object_urls(dashboard, page):
    from playwright.sync_api import Error, expect

    identifier = unique("output")
    body = {"identifier": identifier, "payload": {"seconds": 0}, "endpoints": ["dash-a"]}
    assert dashboard.api.post("sleeper", body).status == 201
    dashboard.api.wait_status("sleeper", identifier, ("DONE",))
    held = []

    def answer(route):
        if not held:
            held.append(route)  # the first load hangs until the test answers it
        else:
            route.fulfill(status=200, headers={"X-Tasker-Run-State": "succeeded"}, body="second load\n")

    page.route("**/output?*", answer)
    ended = []
    for event in ("requestfinished", "requestfailed"):
        page.on(event, lambda request: ended.append(request.url) if "/output?" in request.url else None)
    page.add_init_script(
        """window.__urls = new Set();
        const create = URL.createObjectURL, revoke = URL.revokeObjectURL;
        URL.createObjectURL = (blob) => { const url = create(blob); window.__urls.add(url); return url; };
        URL.revokeObjectURL = (url) => { window.__urls.delete(url); revoke(url); };"""
    )
    page.goto(dashboard.url + "#/task/sleeper/" + identifier)
    output = row(page, "dash-a").locator(".output-button")
    output.click()
    wait_for(lambda: page.wait_for_timeout(50) or held, 10, 0, "the first load to be sent")
    page.click("#output-close")
    output.click()
    expect(page.locator("#output-text")).to_have_text("second load\n")
    expect(page.locator("#output-save")).to_be_visible()
    try:
        held[0].fulfill(status=200, headers={"X-Tasker-Run-State": "succeeded"}, body="first load, answered late\n")
    except Error:
        pass  # the page may have dropped that request when it gave the load up
    wait_for(lambda: page.wait_for_timeout(50) or len(ended) == 2, 10, 0, "both loads to end, one way or the other")
    settle(page)
    expect(page.locator("#output-text")).to_have_text("second load\n")
    assert page.evaluate("window.__urls.size") == 1, "one object URL: the Save link's"
    page.click("#output-close")
    wait_for(lambda: page.evaluate("window.__urls.size") == 0, 5, 0.05, "its object URL revoked once it closed")
