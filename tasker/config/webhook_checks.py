"""Checks of `api.webhooks` and `api.webhook_delivery`: a webhook the API could not call
safely, or would call somewhere unintended, stops the configuration from loading."""

from __future__ import annotations

import urllib.parse

from tasker.config.schema import ApiConfig, WebhookConfig, WebhookDeliveryConfig
from tasker.errors import ConfigError
from tasker.webhooks import KINDS

# A short secret can be guessed from signed deliveries; 16 characters is a floor, not a goal.
MIN_SECRET = 16


def check_webhooks(api: ApiConfig, task_types: tuple[str, ...]) -> None:
    """Raise ConfigError for a webhook without a usable URL or secret, or naming unknown
    task types or kinds of event, and for delivery settings out of range."""
    seen: set[str] = set()
    for number, webhook in enumerate(api.webhooks):
        key = "api.webhooks[%d]" % number
        _check_url(webhook.url, key)
        if webhook.url in seen:
            raise ConfigError("%s: %s is configured twice; give each URL once" % (key, webhook.url))
        seen.add(webhook.url)
        _check_secret(webhook, key)
        for task_type in webhook.types:
            if task_type not in task_types:
                raise ConfigError("%s.types: %r is not in task_types" % (key, task_type))
        if not webhook.events:
            raise ConfigError("%s.events is empty: name task and/or response, or leave it out for both" % key)
        for kind in webhook.events:
            if kind not in KINDS:
                raise ConfigError("%s.events: %r is not an event (task or response)" % (key, kind))
    _check_delivery(api.webhook_delivery)


def _check_url(url: str, key: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError("%s.url: %r is not a URL: %s" % (key, url, exc)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("%s.url: %r is not an http:// or https:// URL with a host" % (key, url))
    if any(char.isspace() for char in url):
        raise ConfigError("%s.url: %r has white space in it" % (key, url))


def _check_secret(webhook: WebhookConfig, key: str) -> None:
    if not webhook.secret.strip():
        raise ConfigError(
            "%s: a webhook needs a secret to sign its deliveries with (give it from the environment, "
            'e.g. secret: "{TASKER_WEBHOOK_SECRET}")' % key
        )
    if len(webhook.secret) < MIN_SECRET:
        raise ConfigError("%s.secret must be at least %d characters long" % (key, MIN_SECRET))


def _check_delivery(delivery: WebhookDeliveryConfig) -> None:
    key = "api.webhook_delivery"
    for name in ("first_retry", "max_retry_delay", "give_up_after", "interval", "retention"):
        if getattr(delivery, name) <= 0:
            raise ConfigError("%s.%s must be above 0 seconds" % (key, name))
    if delivery.max_retry_delay < delivery.first_retry:
        raise ConfigError("%s.max_retry_delay must not be below first_retry" % key)
    if not 1 <= delivery.concurrency <= 1000:
        raise ConfigError("%s.concurrency must be between 1 and 1000" % key)
