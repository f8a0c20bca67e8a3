// One task: `GET /<type>/<identifier>?runs=all`, one row per endpoint, live through
// `GET /events?type=<type>&identifier=<identifier>`; Retry and Cancel buttons.

import { apiPath, getJson, postJson } from './api.js';
import { badge, h, head, replace, route, throttled, time } from './dom.js';
import { showOutput } from './output.js';
import { EventStream } from './sse.js';
import { counts } from './tasks.js';

const FINAL = ['succeeded', 'failed', 'timed_out', 'cancelled', 'skipped', 'missing'];
const RETRYABLE = ['failed', 'timed_out', 'cancelled', 'skipped', 'missing']; // the API's "failed" selection
const REFRESH_MS = 500;
const CONFIRM_MS = 5000;
const COLUMNS = ['Endpoint', 'State', 'Progress', 'Run', 'Attempts', 'Started (UTC)', 'Changed (UTC)', 'Result', ''];

/** Render task `identifier` of `type` (both checked by the router); returns the view's stop(). */
export function showTask(page, type, identifier) {
  const routeKey = location.hash;
  const path = apiPath(type, identifier);
  const state = { task: null, responses: [], open: new Set() };
  const status = h('span', { id: 'task-status' });
  const facts = h('dl', { class: 'facts' });
  const chips = h('div', { class: 'counts', id: 'task-counts' });
  const payload = h('pre', { class: 'payload', id: 'task-payload' });
  const rows = h('tbody');
  const retryFailed = h('button', { id: 'retry-failed', type: 'button', disabled: true }, 'Retry failed');
  const cancel = h('button', { id: 'cancel-task', type: 'button', class: 'danger', disabled: true }, 'Cancel');
  replace(
    page.view,
    h('a', { href: route('tasks', type), class: 'back' }, `← ${type} tasks`),
    h(
      'div',
      { class: 'heading' },
      h('h1', { class: 'identifier' }, identifier),
      status,
      h('div', { class: 'actions' }, retryFailed, cancel),
    ),
    facts,
    chips,
    h('details', { class: 'payload' }, h('summary', {}, 'Payload'), payload),
    h(
      'table',
      { class: 'responses', id: 'responses' },
      head(COLUMNS),
      rows,
    ),
  );

  const load = async () => {
    let answer;
    try {
      answer = await getJson(path + '?runs=all');
    } catch (error) {
      if (page.current(routeKey)) page.notice(error.status === 404 ? `No ${type} task ${identifier}.` : error.message);
      return;
    }
    if (!page.current(routeKey)) return;
    page.notice(null);
    state.task = answer.task;
    state.responses = answer.taskResponseList;
    draw();
  };
  const refresh = throttled(load, REFRESH_MS);

  const showStatus = (task) => {
    replace(status, badge(task.status), task.settled ? h('span', { class: 'muted' }, 'settled') : null);
    cancel.disabled = task.settled;
  };
  const draw = () => {
    const { task, responses } = state;
    showStatus(task);
    replace(facts, taskFacts(task));
    replace(chips, counts(task.counts, task.endpoints.length));
    payload.textContent = JSON.stringify(task.payload, null, 2);
    retryFailed.disabled = !responses.some((r) => RETRYABLE.includes(r.state));
    replace(rows, responses.map((response) => responseRows(response, actions)));
  };

  const act = async (button, busyText, path, body, done) => {
    const text = button.textContent;
    button.disabled = true;
    button.textContent = busyText;
    try {
      const answer = await postJson(path, body);
      page.notice(null);
      if (done) done(answer);
    } catch (error) {
      page.notice(error.message);
    } finally {
      button.textContent = text;
      button.disabled = false;
      load();
    }
  };
  const latestRun = () => Math.max(0, ...state.responses.map((r) => r.run));
  const actions = {
    retry: (button, response) =>
      act(button, 'Retrying…', path + '/retry', { endpoints: [response.endpoint], after_run: response.run }),
    output: (response, run) => showOutput(type, identifier, response.endpoint, run),
    toggle: (endpoint, open) => (open ? state.open.add(endpoint) : state.open.delete(endpoint)),
    isOpen: (endpoint) => state.open.has(endpoint),
  };
  retryFailed.addEventListener('click', () =>
    act(retryFailed, 'Retrying…', path + '/retry', { endpoints: 'failed', after_run: latestRun() }),
  );
  let confirming = null;
  cancel.addEventListener('click', () => {
    if (!confirming) {
      cancel.textContent = 'Really cancel?';
      cancel.classList.add('confirm');
      confirming = setTimeout(() => {
        confirming = null;
        cancel.textContent = 'Cancel';
        cancel.classList.remove('confirm');
      }, CONFIRM_MS);
      return;
    }
    clearTimeout(confirming);
    confirming = null;
    cancel.classList.remove('confirm');
    cancel.textContent = 'Cancel';
    act(cancel, 'Cancelling…', path + '/cancel', {});
  });

  load();
  const stream = new EventStream(
    { type, identifier },
    {
      onOpen: (resumed) => resumed || refresh(), // changes before the stream opened
      onReset: refresh,
      onState: (live, text) => page.live(live, text),
      onEvent: ({ type: kind, data }) => {
        if (data.identifier !== identifier) return;
        if (kind === 'response') showEvent(rows, data);
        else if (kind === 'task') showStatus(data);
        refresh(); // attempts, times, output tail: read again, at most every REFRESH_MS
      },
    },
  ).start();
  return () => {
    stream.stop();
    refresh.cancel();
    clearTimeout(confirming);
  };
}

function taskFacts(task) {
  const fact = (term, value) =>
    value === null || value === undefined ? null : h('div', {}, h('dt', {}, term), h('dd', {}, value));
  return [
    fact('Type', task.type),
    fact('Endpoints', String(task.endpoints.length)),
    fact('Created', time(task.start_time)),
    fact('Delivery deadline', time(task.deadline)),
    fact('Changed', time(task.last_modified_time)),
    fact('Timeout', task.timeout != null ? `${task.timeout} s` : null),
    fact('Max concurrency', task.max_concurrency),
    fact('Max errors', task.max_errors),
    task.cancel_requested ? fact('Cancel requested', time(task.cancel_requested)) : null,
  ];
}

/** The row of one endpoint, and the row under it with its output's tail and earlier runs. */
function responseRows(response, actions) {
  const endpoint = response.endpoint;
  const final = FINAL.includes(response.state);
  const main = h(
    'tr',
    { class: 'response', dataset: { endpoint, run: String(response.run) } },
    h('td', { class: 'endpoint' }, endpoint),
    h('td', { class: 'state' }, badge(response.state)),
    h('td', { class: 'progress' }, progress(response.state, response.progress, response.progress_message)),
    h('td', { class: 'run num' }, String(response.run)),
    h('td', { class: 'attempts num' }, String(response.attempts)),
    h('td', {}, time(response.start_time)),
    h('td', {}, time(response.last_modified_time)),
    h('td', { class: 'result' }, result(response)),
    h('td', { class: 'row-actions' }, rowButtons(response, final, actions)),
  );
  const details = h(
    'tr',
    { class: 'response-details', dataset: { endpoint } },
    h('td', { colspan: COLUMNS.length }, tail(response), earlierRuns(response, actions)),
  );
  return [main, details];
}

function rowButtons(response, final, actions) {
  const output = () => actions.output(response, response.run);
  const retry = (event) => actions.retry(event.currentTarget, response);
  // Retrying a run that failed is the usual case; one that succeeded stays a quieter button.
  const retryClass = RETRYABLE.includes(response.state) ? 'retry-button' : 'retry-button secondary';
  return [
    h('button', { type: 'button', class: 'secondary output-button', onclick: output }, 'Output'),
    final ? h('button', { type: 'button', class: retryClass, onclick: retry }, 'Retry') : null,
  ];
}

function progress(state, value, message) {
  if (value === null || value === undefined) {
    if (state !== 'running') return h('span', { class: 'muted' }, '—');
    return h('div', { class: 'bar' }, h('progress', {}), h('span', { class: 'message' }, 'running'));
  }
  return h(
    'div',
    { class: 'bar' },
    h('progress', { max: 100, value }),
    h('span', { class: 'message' }, `${Math.round(value)}%`, message ? ` ${message}` : ''),
  );
}

function result(response) {
  if (response.errnr !== 0 || response.errmsg) {
    return h('span', { class: 'error' }, `errnr ${response.errnr}`, response.errmsg ? `: ${response.errmsg}` : '');
  }
  if (response.payload === null || response.payload === undefined || response.payload === '') {
    return h('span', { class: 'muted' }, '—');
  }
  const text = JSON.stringify(response.payload);
  return h('code', { title: text.slice(0, 2000) }, text.length > 80 ? text.slice(0, 80) + '…' : text);
}

function tail(response) {
  if (!response.output_tail) return null;
  const lines = response.output_tail.replace(/\n$/, '').split('\n');
  const size = response.output_size != null ? ` (${response.output_size} bytes in all)` : '';
  return h(
    'div',
    { class: 'tail' },
    h('div', { class: 'muted' }, `Last lines of the output${size}`),
    h('pre', { class: 'output-tail' }, lines.slice(-6).join('\n')),
  );
}

function earlierRuns(response, actions) {
  const runs = response.runs ?? [];
  if (!runs.length) return null;
  const output = (run) => () => actions.output(response, run.run);
  const details = h(
    'details',
    { class: 'runs', open: actions.isOpen(response.endpoint) },
    h('summary', {}, runs.length === 1 ? '1 earlier run' : `${runs.length} earlier runs`),
    h(
      'table',
      { class: 'earlier' },
      head(['Run', 'State', 'Attempts', 'Started', 'Changed', 'Result', '']),
      h(
        'tbody',
        {},
        runs.map((run) =>
          h(
            'tr',
            { dataset: { run: String(run.run) } },
            h('td', { class: 'num' }, String(run.run)),
            h('td', {}, badge(run.state)),
            h('td', { class: 'num' }, String(run.attempts)),
            h('td', {}, time(run.start_time)),
            h('td', {}, time(run.last_modified_time)),
            h('td', {}, result(run)),
            h('td', {}, h('button', { type: 'button', class: 'secondary', onclick: output(run) }, 'Output')),
          ),
        ),
      ),
    ),
  );
  details.addEventListener('toggle', () => actions.toggle(response.endpoint, details.open));
  return details;
}

/** Show a response event at once (state, progress), before the task is read again. */
function showEvent(rows, event) {
  const row = rows.querySelector(`tr.response[data-endpoint="${CSS.escape(event.endpoint)}"]`);
  if (!row || Number(row.dataset.run) > event.run) return; // an older run's event
  replace(row.querySelector('.state'), badge(event.state));
  replace(row.querySelector('.progress'), progress(event.state, event.progress, event.progress_message));
  replace(row.querySelector('.run'), String(event.run));
}
