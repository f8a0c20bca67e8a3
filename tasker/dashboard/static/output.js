// The full output of one endpoint's run (`GET /<type>/<id>/output?endpoint=E&run=N`), shown
// as text in a dialog: it is whatever the handler printed, so it is never parsed as HTML.
//
// One load at a time: opening another output, or closing the dialog, aborts the load before it,
// whose answer (should it come anyway) is ignored, and revokes the Save link's object URL.

import { apiPath, call } from './api.js';

const dialog = document.getElementById('output-dialog');
const title = document.getElementById('output-title');
const info = document.getElementById('output-info');
const text = document.getElementById('output-text');
const save = document.getElementById('output-save');
let loading = null; // the AbortController of the load the dialog shows
let saved = null; // the object URL of the text the Save link offers

document.getElementById('output-close').addEventListener('click', () => dialog.close());
dialog.addEventListener('close', release);

/** Forget the load on screen: abort it if it is still under way, revoke its object URL. */
function release() {
  loading?.abort();
  loading = null;
  if (saved) URL.revokeObjectURL(saved);
  saved = null;
  save.hidden = true;
  save.removeAttribute('href');
}

/** Open the dialog and load the output of `endpoint`'s run `run` of a task. */
export async function showOutput(type, identifier, endpoint, run) {
  release();
  const load = new AbortController();
  loading = load;
  title.textContent = `${endpoint}, run ${run}`;
  info.textContent = 'loading…';
  text.textContent = '';
  if (!dialog.open) dialog.showModal();
  const query = new URLSearchParams({ endpoint, run: String(run) });
  let body;
  let response;
  try {
    response = await call(`${apiPath(type, identifier, 'output')}?${query}`, { signal: load.signal });
    body = await response.text();
  } catch (error) {
    if (loading === load) info.textContent = error.message;
    return;
  }
  if (loading !== load) return; // a later load, or a close, replaced this one
  const state = response.headers.get('X-Tasker-Run-State') ?? '';
  const size = response.headers.get('X-Tasker-Output-Size');
  const ended = !['queued', 'received', 'running'].includes(state);
  info.textContent = ended
    ? `${state}; ${size ?? body.length} bytes`
    : `${state}: the output is stored when the run ends (its last lines so far are on the page)`;
  text.textContent = body || (ended ? '(no output)' : '');
  if (body) {
    saved = URL.createObjectURL(new Blob([body], { type: 'text/plain' }));
    save.href = saved;
    save.download = `${identifier}-${endpoint}-run${run}.txt`;
    save.hidden = false;
  }
}
