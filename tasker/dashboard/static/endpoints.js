// The endpoints: `GET /endpoints[?type=T]`, with liveness from the managers' heartbeats.
// Heartbeats are no events, so the view reads the list again every few seconds.

import { getJson } from './api.js';
import { h, head, replace, route, routeWithQuery, time } from './dom.js';

const POLL_MS = 5000;
const COLUMNS = [
  ...['Type', 'Endpoint', 'Alive', 'Last seen (UTC)', 'Running'],
  ...['Queued', 'Host', 'PID', 'Version', 'Registered (UTC)'],
];

/** Render the endpoints (of `query.type`); returns the view's stop(). */
export function showEndpoints(page, query) {
  const routeKey = location.hash;
  const type = query.type ?? '';
  const rows = h('tbody');
  const summary = h('span', { class: 'muted', id: 'endpoint-summary' });
  const select = h(
    'select',
    {
      'aria-label': 'task type',
      onchange: () => (location.hash = routeWithQuery('#/endpoints', { type: select.value })),
    },
    h('option', { value: '' }, 'every type'),
    page.types.map((name) => h('option', { value: name, selected: name === type }, name)),
  );
  replace(
    page.view,
    h('div', { class: 'heading' }, h('h1', {}, 'Endpoints'), select, summary),
    h(
      'table',
      { class: 'endpoints', id: 'endpoint-list' },
      head(COLUMNS),
      rows,
    ),
    h('p', { class: 'muted' }, 'An endpoint is alive while its manager was heard from within 3 of its heartbeat intervals.'),
  );

  page.live('off', 'read every 5 s');
  let timer = null;
  const load = async () => {
    try {
      const answer = await getJson('endpoints' + (type ? '?' + new URLSearchParams({ type }) : ''));
      if (!page.current(routeKey)) return;
      page.notice(null);
      const endpoints = answer.endpoints;
      const alive = endpoints.filter((e) => e.alive).length;
      summary.textContent = `${alive} of ${endpoints.length} alive`;
      const none = h('tr', {}, h('td', { colspan: COLUMNS.length, class: 'empty' }, 'No endpoint is registered.'));
      replace(rows, endpoints.length ? endpoints.map(endpointRow) : none);
    } catch (error) {
      if (page.current(routeKey)) page.notice(error.message);
    }
    if (page.current(routeKey)) timer = setTimeout(load, POLL_MS);
  };
  load();
  return () => clearTimeout(timer);
}

function endpointRow(endpoint) {
  const liveness = endpoint.alive === null ? 'unknown' : endpoint.alive ? 'alive' : 'dead';
  return h(
    'tr',
    { dataset: { type: endpoint.type, endpoint: endpoint.endpoint } },
    h('td', {}, endpoint.type),
    h('td', { class: 'endpoint' }, endpoint.endpoint),
    h('td', { class: 'alive' }, h('span', { class: 'liveness', dataset: { value: liveness } }, liveness)),
    h('td', {}, time(endpoint.last_seen)),
    h('td', {}, running(endpoint)),
    h('td', { class: 'num' }, endpoint.queued ?? '—'),
    h('td', {}, endpoint.host ?? '—'),
    h('td', { class: 'num' }, endpoint.pid ?? '—'),
    h('td', {}, endpoint.version ?? '—'),
    h('td', {}, time(endpoint.registered_at)),
  );
}

function running(endpoint) {
  if (!endpoint.running) return h('span', { class: 'muted' }, 'idle');
  return h('a', { href: route('task', endpoint.type, endpoint.running), class: 'identifier' }, endpoint.running);
}
