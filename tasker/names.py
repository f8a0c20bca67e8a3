"""The rules for names: task types, identifiers and endpoints, as the config, the API, the
managers and the `tasker` command all check them (a module without dependencies, so the
command can check its arguments without loading the rest)."""

from __future__ import annotations

import re

_NAME_CHARS = "A-Za-z0-9._:-"
NAME_PATTERN = re.compile(r"^[%s]{1,50}\Z" % _NAME_CHARS)
# The same rule in JSON Schema's (ECMA-262) reading, where `$` is the end of the string only.
NAME_SCHEMA_PATTERN = r"^[%s]{1,50}$" % _NAME_CHARS
NAME_RULE = "1 to 50 characters from A-Z a-z 0-9 . _ : -"
TASK_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,49}\Z")
