"""How bin/api and bin/manager format their log records: readable text, or one JSON object a
line (`logging.format: json`) with `time`, `level`, `logger`, `message`, `process`, and the
`task`, `type` and `endpoint` the record is about where it tells them.

A record tells them by `extra={"task": ..., "type": ..., "endpoint": ...}`, or by tasker's
way of saying it in the message: `"task %s on %s: ..."` (identifier, endpoint), `"task %s (%s)
..."` (identifier, type), `"task %s run %d on %s"`. A manager's lines all carry its type and
endpoint. In either format, the secrets of the configuration (tokens, passwords, webhook
secrets, the password in a URL) are replaced by `***` wherever they would appear.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import urllib.parse
from typing import Any, Iterable

TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
MASK = "***"
# Shorter values are not masked: they would blank ordinary words (a development password
# "guest" is its user's name too); real tokens and passwords are longer.
MIN_SECRET_LENGTH = 8
SECRET_KEYS = frozenset({"password", "passwd", "secret", "secrets", "token", "tokens"})
URL_KEYS = frozenset({"uri", "url"})
FIELDS = ("task", "type", "endpoint")

_ABOUT_TASK = re.compile(r"task %s(?P<type> \(%s\))?(?P<run> run %d)?(?P<endpoint> on %s)?")
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa%]")


class SecretMask:
    """Replaces each of `secrets` (those long enough to be told from words) with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first: a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


class TextFormatter(logging.Formatter):
    """tasker's text lines, secrets masked."""

    def __init__(self, mask: SecretMask | None = None) -> None:
        super().__init__(TEXT_FORMAT)
        self.mask = mask or SecretMask()

    def format(self, record: logging.LogRecord) -> str:
        return self.mask(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object a record, on one line; `fields` (a manager's type and endpoint) on every
    line unless the record says otherwise."""

    def __init__(self, mask: SecretMask | None = None, fields: dict[str, str] | None = None) -> None:
        super().__init__()
        self.mask = mask or SecretMask()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": self.mask(record.getMessage()),
            "process": record.process,
        }
        line.update(self.fields)
        line.update((name, self.mask(value)) for name, value in about(record).items())
        if record.exc_info:
            line["exception"] = self.mask(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = self.mask(record.exc_text)
        if record.stack_info:
            line["stack"] = self.mask(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def about(record: logging.LogRecord) -> dict[str, str]:
    """The task, type and endpoint a record is about: given as `extra`, else read from its
    message's `task %s ...` wording."""
    found = _from_wording(record)
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = str(value)
    return found


def _from_wording(record: logging.LogRecord) -> dict[str, str]:
    if not isinstance(record.msg, str) or not isinstance(record.args, tuple):
        return {}
    match = _ABOUT_TASK.search(record.msg)
    if match is None:
        return {}
    first = sum(1 for p in _PLACEHOLDER.findall(record.msg[: match.start()]) if p != "%%")
    names = ["task"] + [name for name in ("type", "run", "endpoint") if match.group(name)]
    values = record.args[first : first + len(names)]
    if len(values) < len(names):
        return {}
    return {name: str(value) for name, value in zip(names, values, strict=True) if name != "run"}


def config_secrets(value: Any, key: str = "") -> list[str]:
    """Every secret a configuration (or any part of it) holds: values of keys named like
    passwords, tokens and secrets, and the passwords inside URLs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in config_secrets(getattr(value, f.name), f.name)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in config_secrets(v, str(k))]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in config_secrets(item, key)]
    if not isinstance(value, str) or not value:
        return []
    if key.lower() in SECRET_KEYS:
        return [value]
    if key.lower() in URL_KEYS:
        return _url_password(value)
    return []


def _url_password(url: str) -> list[str]:
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    return sorted({password, urllib.parse.unquote(password)})


def _iso_time(created: float) -> str:
    moment = dt.datetime.fromtimestamp(created, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)
