// The task list of one type: `GET /<type>` with the history's filters, a page at a time,
// kept live through `GET /events?type=<type>` while the newest page is shown.

import { apiPath, getJson } from './api.js';
import { badge, h, head, replace, route, routeWithQuery, throttled, time } from './dom.js';
import { EventStream } from './sse.js';

export const STATUSES = ['CREATED', 'SENT', 'DONE', 'INCOMPLETE', 'CANCELLED'];
export const STATES = [
  ...['queued', 'received', 'running'],
  ...['succeeded', 'failed', 'timed_out', 'cancelled', 'skipped', 'missing'],
];
const FILTERS = ['status', 'state', 'endpoint', 'identifier', 'since', 'until'];
const REFRESH_MS = 700; // at most this often while events come in

/** Render the list of `type`'s tasks with the filters of `query`; returns the view's stop(). */
export function showTasks(page, type, query) {
  const routeKey = location.hash;
  const filters = Object.fromEntries(FILTERS.map((name) => [name, query[name] ?? '']));
  const body = h('tbody');
  const pager = h('div', { class: 'pager' });
  const summary = h('span', { class: 'muted' });
  replace(
    page.view,
    h('div', { class: 'heading' }, h('h1', {}, 'Tasks'), typeChooser(page.types, type, filters), summary),
    filterForm(type, filters),
    h(
      'table',
      { class: 'tasks', id: 'task-list' },
      head(['Identifier', 'Status', 'Endpoints', 'Created (UTC)', 'Changed (UTC)']),
      body,
    ),
    pager,
  );

  const load = async () => {
    const params = new URLSearchParams({ ...nonEmpty(filters) });
    if (query.cursor) params.set('cursor', query.cursor);
    let answer;
    try {
      answer = await getJson(apiPath(type) + '?' + params.toString());
    } catch (error) {
      if (page.current(routeKey)) page.notice(error.message);
      return;
    }
    if (!page.current(routeKey)) return;
    page.notice(null);
    replace(body, answer.tasks.length ? answer.tasks.map((task) => taskRow(type, task)) : emptyRow(answer.next));
    summary.textContent = answer.tasks.length ? `${answer.tasks.length} on this page` : '';
    replace(pager, pagerLinks(type, filters, query.cursor, answer.next));
  };
  const refresh = throttled(load, REFRESH_MS);
  load();

  if (query.cursor) return () => refresh.cancel(); // an older page: what comes in is on the first
  const stream = new EventStream(
    { type },
    {
      onOpen: (resumed) => resumed || refresh(), // changes before the stream opened
      onReset: refresh,
      onState: (state, text) => page.live(state, text),
      onEvent: ({ type: kind, data }) => {
        const row = body.querySelector(`tr[data-identifier="${CSS.escape(data.identifier)}"]`);
        if (row && kind === 'task') updateRow(row, data); // at once; the page is read again below
        refresh(); // a new task, counts that changed, a task that left the filters
      },
    },
  ).start();
  return () => {
    stream.stop();
    refresh.cancel();
  };
}

function nonEmpty(values) {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== ''));
}

function typeChooser(types, type, filters) {
  const select = h(
    'select',
    {
      id: 'type-select',
      'aria-label': 'task type',
      onchange: () => {
        location.hash = routeWithQuery(route('tasks', select.value), nonEmpty(filters));
      },
    },
    types.map((name) => h('option', { value: name, selected: name === type }, name)),
  );
  return select;
}

function filterForm(type, filters) {
  const option = (name, value) => h('option', { value, selected: value === filters[name] }, value);
  const choice = (name, values, label) =>
    h('label', {}, label, h('select', { name }, h('option', { value: '' }, 'any'), values.map((v) => option(name, v))));
  const text = (name, label, placeholder) =>
    h('label', {}, label, h('input', { name, value: filters[name], placeholder, autocomplete: 'off', spellcheck: 'false' }));
  const form = h(
    'form',
    { class: 'filters', id: 'filters' },
    choice('status', STATUSES, 'Status'),
    choice('state', STATES, 'Endpoint state'),
    text('endpoint', 'Endpoint', 'name'),
    text('identifier', 'Identifier', 'starts with'),
    text('since', 'Since', 'YYYY-MM-DD HH:MM:SS'),
    text('until', 'Until', 'YYYY-MM-DD HH:MM:SS'),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'submit' }, 'Filter'),
      h('a', { href: route('tasks', type), class: 'button secondary' }, 'Clear'),
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    location.hash = routeWithQuery(route('tasks', type), nonEmpty(values));
  });
  return form;
}

function taskRow(type, task) {
  return h(
    'tr',
    { dataset: { identifier: task.identifier } },
    h('td', {}, h('a', { href: route('task', type, task.identifier), class: 'identifier' }, task.identifier)),
    h('td', { class: 'status' }, badge(task.status)),
    h('td', { class: 'counts' }, counts(task.counts, task.endpoints.length)),
    h('td', {}, time(task.start_time)),
    h('td', { class: 'changed' }, time(task.last_modified_time)),
  );
}

function updateRow(row, event) {
  replace(row.querySelector('.status'), badge(event.status));
  replace(row.querySelector('.counts'), counts(event.counts, null));
}

/** Count chips: "2 succeeded", "1 failed", ... for the states some endpoint is in. */
export function counts(values, total) {
  const chips = STATES.filter((state) => values?.[state]).map((state) =>
    h('span', { class: 'chip', dataset: { value: state } }, `${values[state]} ${state.replace('_', ' ')}`),
  );
  return chips.length ? chips : h('span', { class: 'muted' }, total === 0 ? 'no endpoints' : '—');
}

function emptyRow(next) {
  const text = next ? 'None on this page; older tasks may match (see Older).' : 'No tasks match.';
  return h('tr', {}, h('td', { colspan: 5, class: 'empty' }, text));
}

function pagerLinks(type, filters, cursor, next) {
  const base = route('tasks', type);
  const newest = routeWithQuery(base, nonEmpty(filters));
  const older = routeWithQuery(base, { ...nonEmpty(filters), cursor: next });
  return [
    cursor ? h('a', { href: newest, class: 'button secondary' }, '« Newest') : null,
    next ? h('a', { href: older, class: 'button secondary', id: 'older' }, 'Older »') : null,
  ];
}
