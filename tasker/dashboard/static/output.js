// The full output of one endpoint's run (`GET /<type>/<id>/output?endpoint=E&run=N`), shown
// as text in a dialog: it is whatever the handler printed, so it is never parsed as HTML.

import { call } from './api.js';

const dialog = document.getElementById('output-dialog');
const title = document.getElementById('output-title');
const info = document.getElementById('output-info');
const text = document.getElementById('output-text');
const save = document.getElementById('output-save');
let saved = null; // the object URL of the text the Save link offers

document.getElementById('output-close').addEventListener('click', () => dialog.close());
dialog.addEventListener('close', () => {
  if (saved) URL.revokeObjectURL(saved);
  saved = null;
});

/** Open the dialog and load the output of `endpoint`'s run `run` of a task. */
export async function showOutput(type, identifier, endpoint, run) {
  title.textContent = `${endpoint}, run ${run}`;
  info.textContent = 'loading…';
  text.textContent = '';
  save.hidden = true;
  if (!dialog.open) dialog.showModal();
  const query = new URLSearchParams({ endpoint, run: String(run) });
  let body;
  let response;
  try {
    response = await call(`${encodeURIComponent(type)}/${encodeURIComponent(identifier)}/output?${query}`);
    body = await response.text();
  } catch (error) {
    info.textContent = error.message;
    return;
  }
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
