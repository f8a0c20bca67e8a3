"""The web dashboard served at `GET /ui`: a page, its script modules and its style, served as
they are (no build step) by tasker.api.ui."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"


def static_dir() -> Path:
    """The folder of the dashboard's files: `index.html` (the page) and its assets."""
    return STATIC_DIR
