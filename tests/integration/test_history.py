"""The history of a task type, page by page: order, every filter alone and combined, the cursor
while tasks arrive, literal prefixes; on MariaDB and SQLite, through both ways of reading a page."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from tasker.clock import utcnow
from tasker.status import ResponseState, TaskStatus
from tasker.storage import history
from tasker.storage.history import HistoryQuery, HistoryStore
from tests.integration.task_rows import add_task, fresh_type

pytestmark = pytest.mark.integration
T0 = utcnow() - dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Spec:
    """A task of the varied history, as the test expects to find it."""

    number: int
    identifier: str
    start: dt.datetime
    status: str
    states: dict[str, str]


def varied_specs() -> list[Spec]:
    """24 tasks, two a minute (so ties of start_time are broken by id), with varied statuses,
    endpoints, states and identifiers."""
    specs = []
    for number in range(24):
        status = "INCOMPLETE" if number % 4 == 3 else "CANCELLED" if number % 6 == 5 else "DONE"
        states = {"e1": "succeeded"}
        if number % 2 == 0:
            states["e2"] = "failed" if number % 3 == 0 else "succeeded"
        if number % 7 == 0 or status == "INCOMPLETE":
            states["e3"] = "missing" if status == "INCOMPLETE" else "succeeded"
        identifier = ("job_%02d" if number % 5 == 0 else "job-%02d") % number
        specs.append(Spec(number, identifier, T0 + dt.timedelta(minutes=number // 2), status, states))
    return specs


@pytest.fixture
def varied(db):
    """A type with the varied history, and its specs."""
    task_type = fresh_type()
    specs = varied_specs()
    for spec in specs:
        add_task(db, task_type, spec.identifier, spec.start, spec.states, spec.status)
    add_task(db, fresh_type(), "job-00", T0, {"e1": "failed"})  # another type: never listed
    return task_type, specs


@pytest.fixture(params=["few", "window"])
def plan(request, monkeypatch):
    """How a page is read when a filter is on more than the task row: the matching rows, sorted
    (few of them), or the type's range in order, a window of 4 tasks at a time (many)."""
    if request.param == "window":
        monkeypatch.setattr(history, "FEW", 0)
        monkeypatch.setattr(history, "WINDOW", 4)
    return request.param


def every_page(store: HistoryStore, query: HistoryQuery) -> list[list[str]]:
    """The identifiers of each page, following `next` until it is None."""
    pages = []
    while True:
        page = store.page(query)
        pages.append([listed.task.identifier for listed in page.tasks])
        assert len(page.tasks) <= query.limit
        if page.next is None:
            return pages
        query = dataclasses.replace(query, after=page.next)


def newest_first(specs: list[Spec]) -> list[str]:
    return [spec.identifier for spec in sorted(specs, key=lambda spec: (spec.start, spec.number), reverse=True)]


MINUTE = dt.timedelta(minutes=1)
FILTERS = {
    "none": ({}, lambda s: True),
    "status": ({"status": TaskStatus.INCOMPLETE}, lambda s: s.status == "INCOMPLETE"),
    "endpoint": ({"endpoint": "e3"}, lambda s: "e3" in s.states),
    "state": ({"state": ResponseState.FAILED}, lambda s: "failed" in s.states.values()),
    "since": ({"since": T0 + 7 * MINUTE}, lambda s: s.start >= T0 + 7 * MINUTE),
    "until": ({"until": T0 + 3 * MINUTE}, lambda s: s.start <= T0 + 3 * MINUTE),
    "identifier": ({"identifier": "job_"}, lambda s: s.identifier.startswith("job_")),
    "endpoint and state": (
        {"endpoint": "e3", "state": ResponseState.MISSING},
        lambda s: s.states.get("e3") == "missing",
    ),
    "endpoint and another's state": ({"endpoint": "e1", "state": ResponseState.FAILED}, lambda s: False),
    "status, endpoint, since, until": (
        {"status": TaskStatus.DONE, "endpoint": "e2", "since": T0 + 2 * MINUTE, "until": T0 + 9 * MINUTE},
        lambda s: s.status == "DONE" and "e2" in s.states and T0 + 2 * MINUTE <= s.start <= T0 + 9 * MINUTE,
    ),
    "identifier and state": (
        {"identifier": "job-1", "state": ResponseState.SUCCEEDED},
        lambda s: s.identifier.startswith("job-1"),
    ),
    "status and state": (
        {"status": TaskStatus.DONE, "state": ResponseState.FAILED},
        lambda s: s.status == "DONE" and "failed" in s.states.values(),
    ),
}


@pytest.mark.parametrize("limit", [1, 3, 50])
@pytest.mark.parametrize("name", list(FILTERS))
def test_each_filter_alone_and_combined_lists_exactly_its_tasks_newest_first(db, varied, plan, name, limit):
    task_type, specs = varied
    filters, wanted = FILTERS[name]
    pages = every_page(HistoryStore(db), HistoryQuery(task_type, limit=limit, **filters))
    assert [identifier for page in pages for identifier in page] == newest_first([s for s in specs if wanted(s)])
    if plan == "few" or not filters:  # every page full but the last
        assert all(len(page) == limit for page in pages[:-1]), pages


def test_a_listed_task_has_its_responses_states_and_no_payload(db, varied):
    task_type, specs = varied
    (listed,) = HistoryStore(db).page(HistoryQuery(task_type, identifier="job-03")).tasks
    assert listed.task.identifier == "job-03" and listed.task.status is TaskStatus.INCOMPLETE
    assert sorted(state.value for state in listed.states) == ["missing", "succeeded"]
    assert listed.task.payload.text == "null"  # the stored payload is never read
    assert listed.task.endpoints == ("e1", "e3")


def test_paging_while_tasks_arrive_shows_no_task_twice_and_skips_none(db, plan):
    task_type = fresh_type()
    for number in range(30):
        add_task(db, task_type, "old-%02d" % number, T0 + dt.timedelta(seconds=number // 3), {"e1": "succeeded"})
    store, query = HistoryStore(db), HistoryQuery(task_type, state=ResponseState.SUCCEEDED, limit=4)
    seen: list[str] = []
    while True:
        page = store.page(query)
        seen += [listed.task.identifier for listed in page.tasks]
        if page.next is None:
            break
        # New tasks arrive between two pages: later ones, and one as old as the page's last task.
        add_task(db, task_type, "new-%02d" % len(seen), utcnow(), {"e1": "succeeded"})
        add_task(db, task_type, "tie-%02d" % len(seen), page.next[0], {"e1": "succeeded"})
        query = dataclasses.replace(query, after=page.next)
    assert seen == ["old-%02d" % number for number in reversed(range(30))]


def test_an_identifier_prefix_is_taken_literally_and_byte_for_byte(db, plan):
    task_type = fresh_type()
    for number, identifier in enumerate(["a_b1", "axb2", "a_c", "A_b3", "a%x", "abx", "a_"]):
        add_task(db, task_type, identifier, T0 + dt.timedelta(seconds=number), {"e1": "succeeded"})
    store = HistoryStore(db)

    def listed(prefix: str, **filters) -> list[str]:
        return [
            name for page in every_page(store, HistoryQuery(task_type, identifier=prefix, **filters)) for name in page
        ]

    assert listed("a_") == ["a_", "a_c", "a_b1"]
    assert listed("a%") == ["a%x"]
    assert listed("A") == ["A_b3"]
    assert listed("a_b1") == ["a_b1"] and listed("a_b") == ["a_b1"] and listed("b") == []
    assert listed("a_", state=ResponseState.SUCCEEDED) == ["a_", "a_c", "a_b1"]


def test_a_type_without_tasks_has_an_empty_history(db):
    page = HistoryStore(db).page(HistoryQuery(fresh_type(), state=ResponseState.FAILED))
    assert page.tasks == [] and page.next is None


def test_a_page_reads_no_further_than_its_window_and_says_where_to_go_on(db, monkeypatch):
    monkeypatch.setattr(history, "FEW", 0)
    monkeypatch.setattr(history, "WINDOW", 4)
    task_type = fresh_type()
    for number in range(10):  # only the oldest failed: the newest pages find nothing
        state = "failed" if number == 0 else "succeeded"
        add_task(db, task_type, "w-%02d" % number, T0 + dt.timedelta(seconds=number), {"e1": state})
    pages = every_page(HistoryStore(db), HistoryQuery(task_type, state=ResponseState.FAILED, limit=50))
    assert pages == [[], [], ["w-00"]]
