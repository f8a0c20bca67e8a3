"""Whether a request that operates a task comes from the API's own pages or from another site.

Another web page can make an operator's browser send a POST to the API: a plain form needs no
permission, and reaches an API without tokens on a private network or on 127.0.0.1 that the
page itself could never reach. Retry and cancel therefore take only JSON (a cross-site page
cannot send `Content-Type: application/json` without a CORS preflight, which this API never
grants) and refuse a request whose `Origin` is not the API's own. A request without `Origin`
(curl, scripts, the `tasker` command) is not a browser's cross-site request, and goes on.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tornado.httputil import HTTPHeaders

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]  # scheme, host name in lower case, port


def foreign_origin(headers: HTTPHeaders, protocol: str, host: str) -> str | None:
    """Why a request is not from this API's own origin, or None when it may go on.

    `protocol` is the scheme this API serves the request over (`https` with `api.tls`) and
    `host` its `Host` header: the page's origin is their `scheme://host:port`.
    """
    if headers.get("Sec-Fetch-Site", "").strip().lower() == "cross-site":
        return "refused: the browser says this request comes from another site (Sec-Fetch-Site: cross-site)"
    given = headers.get("Origin")
    if given is None:
        return None
    own = parse_origin("%s://%s" % (protocol, host))
    if own is None or parse_origin(given) != own:
        return "refused: Origin %r is not this API's own (%s://%s): another web page cannot operate tasks" % (
            given[:100],
            protocol,
            host[:100],
        )
    return None


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as (scheme, host, port) with the scheme's default port filled
    in; None for anything else (`null`, a path, credentials, a bad port)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]
