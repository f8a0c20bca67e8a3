"""Load `config/<mode>.config.yaml` once, expand environment variables, validate, freeze.

Every value may name environment variables as `{NAME}` or `{NAME:-default}`. A missing
variable, an unknown key or a value of the wrong type is a `ConfigError` that names the key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from tasker.config.schema import PROJECT_ROOT, Config, ManagerConfig, MessageQueueConfig, MetricsConfig
from tasker.config.webhook_checks import check_webhooks
from tasker.errors import ConfigError
from tasker.names import NAME_PATTERN, TASK_TYPE_PATTERN

# Paths of the API's own at its root: a task type of one of these names would hide it.
RESERVED_TASK_TYPES = ("endpoints", "events", "metrics", "ui", "health")
_ENV_REFERENCE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def config_dir() -> Path:
    """Return the folder holding `<mode>.config.yaml` files (`TASKER_CONFIG_DIR` or `config/`)."""
    return Path(os.environ.get("TASKER_CONFIG_DIR") or PROJECT_ROOT / "config")


def load_config(mode: str, directory: Path | None = None) -> Config:
    """Read, expand and validate the configuration of run mode `mode`."""
    path = (directory or config_dir()) / ("%s.config.yaml" % mode)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError("no configuration for run mode %r: %s does not exist" % (mode, path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError("%s is not valid YAML: %s" % (path, exc)) from exc
    if not isinstance(raw, dict):
        raise ConfigError("%s must hold a mapping of configuration keys" % path)
    environ = dict(_env_file_values(), **os.environ)
    expanded = _expand(raw, environ, "")
    config = _build(Config, dict(expanded, mode=mode), "")
    _check(config)
    return config


def _env_file_values() -> dict[str, str]:
    """Values from `var/tasker.env` (written by `make run`), used where the environment lacks them."""
    path = Path(os.environ.get("TASKER_ENV_FILE") or PROJECT_ROOT / "var" / "tasker.env")
    values = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
    return values


def _expand(value: Any, environ: dict[str, str], key: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, environ, _join(key, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ, "%s[%d]" % (key, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    # Inside a URL a value is percent-encoded, so a password with `@` or `/` stays a password
    # (a value that is a whole URL, from one variable, is taken as it is).
    in_url = "://" in _ENV_REFERENCE.sub("", value)

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            text = environ[name]
        elif default is not None:
            text = default
        else:
            raise ConfigError("%s: environment variable %s is not set" % (key, name))
        return urllib.parse.quote(text, safe="") if in_url else text

    # The result is text, never parsed again: a secret is taken as it is. Keys that want a
    # number or a boolean convert it (`_scalar`).
    return _ENV_REFERENCE.sub(substitute, value)


def _join(key: str, name: Any) -> str:
    return "%s.%s" % (key, name) if key else str(name)


def _build(cls: type, raw: Any, key: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError("%s must be a mapping, not %s" % (key or "the file", _kind(raw)))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError("unknown configuration key %s" % _join(key, unknown[0]))
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name in raw:
            values[name] = _coerce(hints[name], raw[name], _join(key, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError("missing configuration key %s" % _join(key, name))
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin in (tuple, list):
        if isinstance(value, str):  # "a, b" (often from one environment variable) is a list
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list):
            raise ConfigError("%s must be a list, not %s" % (key, _kind(value)))
        item = typing.get_args(hint)[0]
        items = [_coerce(item, v, "%s[%d]" % (key, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError("%s must be a mapping, not %s" % (key, _kind(value)))
        _, item = typing.get_args(hint)
        return {str(k): _coerce(item, v, _join(key, k)) for k, v in value.items()}
    return _scalar(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is dict:
        if not isinstance(value, dict):
            raise ConfigError("%s must be a mapping, not %s" % (key, _kind(value)))
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and hint in (int, float, bool):
        return _from_text(hint, value, key)
    if hint is str and value is None:
        return ""
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError("%s must be %s, not %s" % (key, hint.__name__, _kind(value)))
    return value


def _from_text(hint: type, text: str, key: str) -> Any:
    """A number or boolean given as text (from an environment variable)."""
    word = text.strip().lower()
    if hint is bool:
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0"):
            return False
    else:
        try:
            return hint(word)
        except ValueError:
            pass
    raise ConfigError("%s must be %s, not the text %r" % (key, hint.__name__, text[:40]))


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _check(config: Config) -> None:
    if not config.task_types:
        raise ConfigError("task_types must name at least one task type")
    for task_type in config.task_types:
        if not TASK_TYPE_PATTERN.match(task_type):
            raise ConfigError(
                "task_types: %r is not a valid task type (lower-case letters, digits and _, "
                "starting with a letter)" % task_type
            )
        if task_type in RESERVED_TASK_TYPES:
            raise ConfigError(
                "task_types: %r is reserved for the API's own path /%s (reserved: %s); name the task type otherwise"
                % (task_type, task_type, ", ".join(RESERVED_TASK_TYPES))
            )
    per_type = {
        "endpoints": config.endpoints,
        "manager.handler_modules": config.manager.handler_modules,
        "manager.handler_settings": config.manager.handler_settings,
        "manager.execution_timeout": config.manager.execution_timeout,
    }
    for section, mapping in per_type.items():
        for task_type in mapping:
            if task_type not in config.task_types:
                raise ConfigError("%s.%s: %r is not in task_types" % (section, task_type, task_type))
    for task_type, names in config.endpoints.items():
        for name in names:
            if not NAME_PATTERN.match(name):
                raise ConfigError("endpoints.%s: %r is not a valid endpoint name" % (task_type, name))
    if config.api.wait_for_endpoints_timeout <= 0:
        raise ConfigError("api.wait_for_endpoints_timeout must be above 0")
    if config.api.max_timeout <= 0:
        raise ConfigError("api.max_timeout must be above 0 seconds")
    if config.api.retention_days < 0:
        raise ConfigError("api.retention_days must be 0 (keep every task) or more")
    for key in ("max_waiters", "max_event_streams"):
        if getattr(config.api, key) < 0:
            raise ConfigError("api.%s must be 0 or more" % key)
    if config.api.event_retention != 0 and config.api.event_retention < 60:
        # Events must outlive the time a reader may wait behind an open transaction's id.
        raise ConfigError("api.event_retention must be 0 (keep every event) or at least 60 seconds")
    _check_message_queue(config.manager.message_queue)
    _check_manager(config.manager)
    if config.api.tls.enabled and not (config.api.tls.cert_file and config.api.tls.key_file):
        raise ConfigError("api.tls needs cert_file and key_file when enabled")
    _check_auth(config.api.auth, config.api.tokens)
    _check_metrics(config.api.metrics)
    check_webhooks(config.api, config.task_types)
    if config.logging.format not in ("text", "json"):
        raise ConfigError("logging.format must be text or json, not %r" % config.logging.format)


def _check_auth(auth: str, tokens: list[str]) -> None:
    if auth not in ("tokens", "none"):
        raise ConfigError("api.auth must be tokens or none, not %r" % auth)
    if any(not token.strip() for token in tokens):
        raise ConfigError("api.tokens: a token must not be empty or blank")
    if auth == "none" and tokens:
        raise ConfigError("api.auth is none but api.tokens are given: say api.auth: tokens to use them")


def _check_metrics(metrics: MetricsConfig) -> None:
    if metrics.auth not in ("tokens", "none"):
        raise ConfigError("api.metrics.auth must be tokens or none, not %r" % metrics.auth)
    if any(not token.strip() for token in metrics.tokens):
        raise ConfigError("api.metrics.tokens: a token must not be empty or blank")
    if metrics.auth == "none" and metrics.tokens:
        raise ConfigError("api.metrics.auth is none but api.metrics.tokens are given: say tokens to use them")
    if metrics.cache_seconds < 0:
        raise ConfigError("api.metrics.cache_seconds must not be negative")
    if not 0 < metrics.window <= 86400:
        raise ConfigError("api.metrics.window must be above 0 and at most 86400 seconds")


def _check_manager(manager: ManagerConfig) -> None:
    for task_type, seconds in manager.execution_timeout.items():
        if seconds <= 0:
            raise ConfigError("manager.execution_timeout.%s must be above 0 seconds" % task_type)
    if manager.db.timeout <= 0:
        raise ConfigError("manager.db.timeout must be above 0 seconds")
    if manager.cancel_grace < 0:
        raise ConfigError("manager.cancel_grace must not be negative")
    if manager.max_result < 1024:
        raise ConfigError("manager.max_result must be at least 1024 bytes")
    if manager.heartbeat_interval < 1:
        raise ConfigError("manager.heartbeat_interval must be at least 1 second (a manager looks once a second)")


def _check_message_queue(settings: MessageQueueConfig) -> None:
    if settings.prefetch < 1:
        raise ConfigError("manager.message_queue.prefetch must be at least 1")
    if settings.queue_type not in ("classic", "quorum"):
        raise ConfigError("manager.message_queue.queue_type must be classic or quorum, not %r" % settings.queue_type)
    if settings.consumer_timeout < 2:
        raise ConfigError("manager.message_queue.consumer_timeout must be at least 2 seconds")
    if settings.queue_expires < 1:
        raise ConfigError("manager.message_queue.queue_expires must be at least 1 second")
    for entry in settings.hosts:
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
        if not host or (port and not port.isdigit()):
            raise ConfigError("manager.message_queue.hosts: %r is not host or host:port" % entry)
