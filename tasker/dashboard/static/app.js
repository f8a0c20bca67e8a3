// The dashboard: one page, three views chosen by the URL's hash.
//   #/tasks/<type>?status=&endpoint=&state=&since=&until=&identifier=&cursor=   a type's tasks
//   #/task/<type>/<identifier>                                                  one task
//   #/endpoints?type=                                                           the endpoints
// Anything else, a type that is not configured or an identifier the API's rule does not allow
// shows "not found": a view builds API paths from these parts.
// Each view is a function that renders into <main> and returns a function that stops it
// (its event stream, its timers), called when the hash changes.

import { isPathName } from './api.js';
import { h, replace } from './dom.js';
import { showEndpoints } from './endpoints.js';
import { showTask } from './task.js';
import { showTasks } from './tasks.js';

/** The task types of this API, written into the page by the API. */
export const TASK_TYPES = (document.querySelector('meta[name="tasker-task-types"]')?.content ?? '')
  .split(/\s+/)
  .filter(Boolean);

const view = document.getElementById('view');
const notice = document.getElementById('notice');
const live = document.getElementById('live');
let stopView = () => {};

/** The page's context given to every view. */
const page = {
  view,
  types: TASK_TYPES,
  /** Show an error message above the view (null clears it). */
  notice(message) {
    notice.hidden = !message;
    notice.textContent = message ?? '';
  },
  /** The live indicator: `off`, `live` or `retrying`. */
  live(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  },
  /** Whether `routeKey` is still the route on screen (a late answer must not draw over another view). */
  current(routeKey) {
    return location.hash === routeKey;
  },
};

/** The route in the hash: its decoded parts and query, or null when it cannot be decoded. */
function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?', 2);
  try {
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    return { parts, query: Object.fromEntries(new URLSearchParams(query)) };
  } catch {
    return null; // a malformed percent escape: URIError
  }
}

/**
 * The view a route asks for, or a reason it names no page. Only a configured type and a name by
 * the API's rule go on: a view builds API paths from them, and must not leave the API's routes.
 */
function choose(route) {
  if (route === null) return { missing: 'This address cannot be read (a malformed % escape).' };
  const { parts, query } = route;
  const [name, ...rest] = parts;
  const known = (type) => TASK_TYPES.includes(type);
  const noType = (type) => ({
    missing: `No task type ${JSON.stringify(type.slice(0, 60))} here (this API has ${TASK_TYPES.join(', ') || 'none'}).`,
  });
  if (name === undefined || (name === 'tasks' && rest.length === 0)) return { home: true };
  if (name === 'endpoints' && rest.length === 0) {
    return query.type && !known(query.type) ? noType(query.type) : { show: () => showEndpoints(page, query) };
  }
  if (name === 'tasks' && rest.length === 1) {
    return known(rest[0]) ? { show: () => showTasks(page, rest[0], query) } : noType(rest[0]);
  }
  if (name === 'task' && rest.length === 2) {
    const [type, identifier] = rest;
    if (!known(type)) return noType(type);
    if (!isPathName(identifier)) {
      const rule = '1 to 50 characters from A-Z a-z 0-9 . _ : -, not . or ..';
      return { missing: `${JSON.stringify(identifier.slice(0, 60))} is not an identifier this page can show (${rule}).` };
    }
    return { show: () => showTask(page, type, identifier) };
  }
  return { missing: 'No such page.' };
}

function notFound(message) {
  replace(
    view,
    h(
      'div',
      { class: 'not-found', id: 'not-found' },
      h('h1', {}, 'Not found'),
      h('p', {}, message),
      h('p', {}, h('a', { href: '#/' }, 'Show the tasks')),
    ),
  );
}

function render() {
  stopView();
  stopView = () => {};
  page.notice(null);
  page.live('off', 'not live');
  const route = parseHash();
  const name = route?.parts[0];
  document.getElementById('nav-tasks').classList.toggle('active', name === 'tasks' || name === 'task');
  document.getElementById('nav-endpoints').classList.toggle('active', name === 'endpoints');
  const chosen = choose(route);
  if (chosen.show) {
    stopView = chosen.show();
  } else if (chosen.missing) {
    notFound(chosen.missing);
  } else if (TASK_TYPES.length) {
    location.replace('#/tasks/' + encodeURIComponent(TASK_TYPES[0]));
  } else {
    replace(view, 'This API has no task types configured.');
  }
}

window.addEventListener('hashchange', render);
render();
