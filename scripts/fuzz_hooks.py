"""Schemathesis hooks of scripts/fuzz (loaded through SCHEMATHESIS_HOOKS).

`GET /<type>/<identifier>?wait=S` answers after up to S seconds (60 at most) when the task does
not settle, and the fuzz runs no manager, so no task it creates ever settles. A valid `wait`
is sent as 1: the request is still one the document allows and still waits, and the fuzz stays
within its request timeout. Invalid values (0, 61, not a number) are sent as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    """Send a valid `wait` as 1 second."""
    query = case.query
    if not isinstance(query, dict) or "wait" not in query:
        return
    value = query["wait"]
    if isinstance(value, bool):
        return
    if isinstance(value, int) and 1 <= value <= 60:
        query["wait"] = 1
    elif isinstance(value, str) and value.isdigit() and len(value) <= 2 and 1 <= int(value) <= 60:
        query["wait"] = "1"
