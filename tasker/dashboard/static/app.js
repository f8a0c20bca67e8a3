// The dashboard: one page, three views chosen by the URL's hash.
//   #/tasks/<type>?status=&endpoint=&state=&since=&until=&identifier=&cursor=   a type's tasks
//   #/task/<type>/<identifier>                                                  one task
//   #/endpoints?type=                                                           the endpoints
// Each view is a function that renders into <main> and returns a function that stops it
// (its event stream, its timers), called when the hash changes.

import { replace } from './dom.js';
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

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?', 2);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: Object.fromEntries(new URLSearchParams(query)) };
}

function render() {
  stopView();
  stopView = () => {};
  page.notice(null);
  page.live('off', 'not live');
  const { parts, query } = parseHash();
  const [name, ...rest] = parts;
  document.getElementById('nav-tasks').classList.toggle('active', name === 'tasks' || name === 'task');
  document.getElementById('nav-endpoints').classList.toggle('active', name === 'endpoints');
  if (name === 'endpoints') {
    stopView = showEndpoints(page, query);
  } else if (name === 'task' && rest.length === 2) {
    stopView = showTask(page, rest[0], rest[1]);
  } else if (name === 'tasks' && rest.length === 1) {
    stopView = showTasks(page, rest[0], query);
  } else if (TASK_TYPES.length) {
    location.replace('#/tasks/' + encodeURIComponent(TASK_TYPES[0]));
  } else {
    replace(view, 'This API has no task types configured.');
  }
}

window.addEventListener('hashchange', render);
render();
