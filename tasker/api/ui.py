"""`GET /ui`: the web dashboard, a page and its static files, open without a token.

The page asks for a token itself when the API answers 401, so loading it reveals nothing but
the configured task type names (which `/openapi.json` shows without a token too). Its files are
read once when the application is built: serving them does no disk I/O on the IOLoop, and a
name under `/ui/static/` is looked up among them, never joined to a path, so nothing outside
the dashboard's folder can be reached. Every answer carries a Content-Security-Policy (script,
style and requests from this origin only, no inline code, never in a frame), `nosniff` and
`no-referrer`; `Cache-Control: no-cache` with an ETag lets a browser keep a file and ask
whether it changed (`304`).
"""

from __future__ import annotations

import dataclasses
import html
import logging
from pathlib import Path

from tasker.api.base import JsonHandler
from tasker.dashboard import static_dir

log = logging.getLogger(__name__)
PAGE = "index.html"
TYPES_MARK = "{{task_types}}"  # where the page's <meta name="tasker-task-types"> takes the types
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file of the dashboard as it is served."""

    body: bytes
    content_type: str


@dataclasses.dataclass(frozen=True)
class Dashboard:
    """The page, with the configured task types in it, and the files it loads, by name."""

    page: Asset
    assets: dict[str, Asset]


def load_dashboard(task_types: tuple[str, ...], folder: Path | None = None) -> Dashboard:
    """Read the dashboard's folder once: the page and every file of a type it serves."""
    folder = folder or static_dir()
    assets = {
        path.name: Asset(path.read_bytes(), CONTENT_TYPES[path.suffix])
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in CONTENT_TYPES and path.name != PAGE
    }
    # Task type names are configuration, escaped all the same: the page reads them from an attribute.
    types = html.escape(" ".join(task_types), quote=True)
    page = (folder / PAGE).read_text("utf-8").replace(TYPES_MARK, types)
    log.debug("dashboard: %d files from %s", len(assets) + 1, folder)
    return Dashboard(Asset(page.encode("utf-8"), CONTENT_TYPES[".html"]), assets)


class DashboardHandler(JsonHandler):
    """Base of the dashboard's request handlers: no token, the page's security headers on every
    answer (errors included), GET and HEAD only."""

    requires_token = False

    def initialize(self, dashboard: Dashboard) -> None:
        super().initialize()
        self.dashboard = dashboard

    def default_headers(self) -> dict[str, str]:
        """The security headers too, on every answer: refusals sent before the body is read included."""
        return dict(super().default_headers(), **SECURITY_HEADERS)

    def allowed_methods(self) -> list[str]:
        return ["GET", "HEAD"]

    def serve(self, asset: Asset) -> None:
        """Answer with `asset`; Tornado adds its ETag and answers `304` to a matching If-None-Match."""
        self.set_header("Content-Type", asset.content_type)
        self.set_header("Cache-Control", "no-cache")
        self.finish(asset.body)


class DashboardPageHandler(DashboardHandler):
    """`GET /ui`: the page. `/ui/` is sent to it, so that the page's relative links hold."""

    def get(self, slash: str = "") -> None:
        if slash:
            self.redirect("../ui", permanent=True)  # relative: right behind a proxy's path prefix too
            return
        self.serve(self.dashboard.page)

    head = get


class DashboardAssetHandler(DashboardHandler):
    """`GET /ui/static/<name>`: a file of the dashboard's folder, by its name alone."""

    def get(self, name: str) -> None:
        asset = self.dashboard.assets.get(name)
        if asset is None:
            self.fail(404, "no file %r in the dashboard" % name[:60])
            return
        self.serve(asset)

    head = get


class DashboardNotFoundHandler(DashboardHandler):
    """Any other path under `/ui/`: a 404, without asking for a token first."""

    def get(self, path: str) -> None:
        self.fail(404, "no such page of the dashboard: %s" % self.request.path[:100])

    head = get


def dashboard_routes(task_types: tuple[str, ...]) -> list[tuple]:
    """The routes of the dashboard, for tasker.api.app."""
    options = {"dashboard": load_dashboard(task_types)}
    return [
        (r"/ui(/?)", DashboardPageHandler, options),
        (r"/ui/static/([^/]+)", DashboardAssetHandler, options),
        (r"/ui/(.*)", DashboardNotFoundHandler, options),
    ]
