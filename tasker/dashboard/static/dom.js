// Building the page from data without ever parsing data as HTML: every value the API gives
// (identifiers, payloads, errmsg, output, progress messages, endpoint names) is untrusted, and
// reaches the page only as a text node or an attribute value: no HTML is ever parsed from it.

/** An element: `h('a', {href: '#/x', class: 'y', onclick: f}, 'text', child, ...)`. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'value' || key === 'disabled' || key === 'checked') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

/** Append children: nodes as they are, anything else as text; arrays flattened, null skipped. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace the children of `node`. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** A link to a route of the dashboard, from its parts (each one encoded). */
export function route(...parts) {
  return '#/' + parts.map((part) => encodeURIComponent(part)).join('/');
}

/** A route with a query: `#/tasks/worker?status=DONE`; empty values are left out. */
export function routeWithQuery(base, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const text = params.toString();
  return text ? base + '?' + text : base;
}

/** A table's head row of column titles. */
export function head(titles) {
  return h('thead', {}, h('tr', {}, titles.map((title) => h('th', {}, title))));
}

/** A badge of a task status or a response state, coloured by the stylesheet. */
export function badge(value) {
  return h('span', { class: 'badge', dataset: { value: String(value) } }, value ?? '—');
}

/** A time as the API writes it (UTC), with how long ago in its title. */
export function time(text) {
  if (!text) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: text.replace(' ', 'T') + 'Z', title: ago(text) }, text);
}

/** "12 s ago", "3 min ago", "5 h ago", "2 d ago" for a UTC time `YYYY-MM-DD HH:MM:SS`. */
export function ago(text) {
  const seconds = Math.round((Date.now() - Date.parse(text.replace(' ', 'T') + 'Z')) / 1000);
  if (!Number.isFinite(seconds)) return '';
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** Calls `fn` at most once every `ms`, never twice at once; a call meanwhile runs once more after. */
export function throttled(fn, ms) {
  let running = false;
  let again = false;
  let timer = null;
  const run = async () => {
    timer = null;
    running = true;
    again = false;
    try {
      await fn();
    } finally {
      running = false;
      if (again) schedule();
    }
  };
  const schedule = () => {
    if (running) {
      again = true;
    } else if (timer === null) {
      timer = setTimeout(run, ms);
    }
  };
  schedule.cancel = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    again = false;
  };
  return schedule;
}
