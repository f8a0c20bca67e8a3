// Calls to the tasker API, with the bearer token when it wants one.
//
// The page loads without a token. When a call answers 401, the page asks for one (a small
// form), keeps it in sessionStorage (this tab only, gone when it closes) and sends the call
// again. The token only ever travels in the Authorization header, never in a URL.

const TOKEN_KEY = 'tasker.token';

/** The API's root: the page is `<root>/ui`, this module `<root>/ui/static/api.js`. */
export const API_ROOT = new URL('../../', import.meta.url);

/** The API's rule for identifiers and endpoint names: 1 to 50 characters from A-Z a-z 0-9 . _ : - */
export const NAME = /^[A-Za-z0-9._:-]{1,50}$/;

/**
 * Whether `text` can be one segment of an API path the page builds: a name by the API's rule,
 * but not `.` or `..`, which a URL resolves away (encoded or not) to leave the API's routes.
 */
export function isPathName(text) {
  return NAME.test(text) && text !== '.' && text !== '..';
}

/** An API path from its segments, each checked and encoded: `apiPath('worker', id, 'output')`. */
export function apiPath(...segments) {
  const bad = segments.find((segment) => !isPathName(segment));
  if (bad !== undefined) throw new Error(`not a name the API takes: ${String(bad).slice(0, 60)}`);
  return segments.map(encodeURIComponent).join('/');
}

/** An error answer of the API: its status and the message of its JSON body. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** The headers every call sends: the token, when there is one. */
export function authHeaders(extra = {}) {
  const headers = { ...extra };
  if (token()) headers.Authorization = 'Bearer ' + token();
  return headers;
}

let asking = null; // one token form at a time, whichever calls were refused

/** Show the token form and resolve once the user gave a token. */
export function askToken(refused) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.hidden = !refused;
  error.textContent = refused ? 'The API refused that token. Try another.' : '';
  input.value = '';
  asking = new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      const given = input.value.trim();
      if (!given) return;
      sessionStorage.setItem(TOKEN_KEY, given);
      form.removeEventListener('submit', submit);
      dialog.close();
      asking = null;
      resolve();
    };
    form.addEventListener('submit', submit);
  });
  dialog.oncancel = (event) => event.preventDefault(); // Escape does not skip it
  dialog.showModal();
  input.focus();
  return asking;
}

/**
 * Fetch `path` (relative to the API's root) until it is not refused for its token.
 * Resolves to the Response when its status is below 400, else throws an ApiError.
 */
export async function call(path, { method = 'GET', body, headers = {}, signal } = {}) {
  let refused = false;
  for (;;) {
    const sentToken = token();
    const response = await fetch(new URL(path, API_ROOT), {
      method,
      headers: authHeaders(headers),
      body,
      signal,
      cache: 'no-store',
      credentials: 'omit',
    });
    if (response.status === 401) {
      // A token changed by another call meanwhile is tried before asking again.
      if (token() === sentToken) {
        await askToken(refused || Boolean(sentToken));
        refused = true;
      }
      continue;
    }
    if (response.ok) return response;
    throw new ApiError(response.status, await errorMessage(response));
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body?.error?.message ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

/** GET a JSON answer. */
export async function getJson(path, options = {}) {
  return (await call(path, options)).json();
}

/**
 * POST to retry or cancel: always `Content-Type: application/json` (the API refuses these
 * without it, so that a form of another site cannot send them).
 */
export async function postJson(path, data) {
  const response = await call(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(data ?? {}),
  });
  return { status: response.status, body: await response.json() };
}
