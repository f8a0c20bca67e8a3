// The API's event stream (`GET /events`), read with fetch and a ReadableStream.
//
// EventSource cannot send an Authorization header, and the API refuses a token in a URL, so
// the stream is read with fetch and parsed here (Server-Sent Events: `id:`, `event:`, `data:`
// lines, a blank line ends an event, `:` starts a comment). After a drop it reconnects with
// backoff and `Last-Event-ID`, so the API sends what was missed; `event: reset` means that
// could not be done, and the view reads its data again.

import { ApiError, askToken, authHeaders, API_ROOT, token } from './api.js';

const BACKOFF_SECONDS = [1, 2, 4, 8, 15, 30];
// A stream counts as having worked (the backoff starts again at its first step) once it delivered
// an event or stayed open this long: one that opens and ends at once is backed off like a failure.
const STABLE_MS = 10_000;

/** Splits a text stream into Server-Sent Events; `feed()` returns the events complete so far. */
export class SseParser {
  constructor() {
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = null;
  }

  feed(text) {
    this.buffer += text;
    const events = [];
    let end;
    while ((end = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the very end may be the first half of \r\n: wait for the next piece.
      if (this.buffer[end] === '\r' && end === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (this.buffer.startsWith('\r\n', end) ? 2 : 1));
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === '') {
      const event = this.data.length ? { type: this.event || 'message', data: this.data.join('\n'), id: this.id } : null;
      const id = this.id;
      this.reset();
      if (!event && id !== null) return { type: '', data: '', id }; // an id alone still moves Last-Event-ID
      return event;
    }
    if (line.startsWith(':')) return null; // a comment: `: ping`
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.id = value;
    return null;
  }
}

/**
 * Follows `/events?<query>` until stopped. Callbacks: `onEvent({type, data, id})` for each
 * `task` and `response` event (data parsed); `onOpen(resumed)` once connected, `resumed` when
 * the API replays what was missed (no need to read the data again); `onReset()` on
 * `event: reset`; `onState(state, text)` for the page's live indicator.
 */
export class EventStream {
  constructor(query, { onEvent, onOpen, onReset, onState }) {
    this.url = new URL('events?' + new URLSearchParams(query).toString(), API_ROOT);
    this.callbacks = { onEvent, onOpen, onReset, onState };
    this.lastEventId = null;
    this.failures = 0;
    this.openedAt = null; // when the stream now being read opened (performance.now())
    this.controller = null;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  async connect() {
    if (this.stopped) return;
    this.controller = new AbortController();
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (this.lastEventId !== null) headers['Last-Event-ID'] = this.lastEventId;
    const sentToken = token();
    try {
      const response = await fetch(this.url, {
        headers,
        signal: this.controller.signal,
        cache: 'no-store',
        credentials: 'omit',
      });
      if (response.status === 401) {
        if (token() === sentToken) await askToken(Boolean(sentToken));
        this.connect();
        return;
      }
      if (response.status >= 400 && response.status < 500 && response.status !== 429) {
        this.state('off', `not live (HTTP ${response.status})`); // asking again would not help
        return;
      }
      if (!response.ok) throw new ApiError(response.status, `HTTP ${response.status}`);
      this.openedAt = performance.now();
      this.state('live', 'live');
      this.callbacks.onOpen?.(headers['Last-Event-ID'] !== undefined);
      await this.read(response.body);
      throw new Error('the stream ended');
    } catch (error) {
      if (this.stopped) return;
      this.retryLater(error);
    }
  }

  async read(body) {
    const parser = new SseParser();
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const event of parser.feed(value)) {
        if (event.id !== null) this.lastEventId = event.id;
        this.failures = 0;
        this.dispatch(event);
      }
    }
  }

  dispatch(event) {
    if (event.type === 'reset') {
      this.callbacks.onReset?.();
    } else if (event.type === 'task' || event.type === 'response') {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      this.callbacks.onEvent?.({ type: event.type, data, id: event.id });
    }
  }

  retryLater(error) {
    if (this.openedAt !== null && performance.now() - this.openedAt >= STABLE_MS) this.failures = 0;
    this.openedAt = null;
    const seconds = BACKOFF_SECONDS[Math.min(this.failures, BACKOFF_SECONDS.length - 1)];
    this.failures += 1;
    const delay = seconds * 1000 * (0.8 + Math.random() * 0.4); // jitter: not every tab at once
    this.state('retrying', `reconnecting in ${Math.round(delay / 1000)} s`);
    console.debug('tasker: event stream', error);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  state(state, text) {
    this.callbacks.onState?.(state, text);
  }
}
