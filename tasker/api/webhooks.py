"""The webhook sender of one API process: it turns new events into deliveries, claims the
due ones, POSTs each signed to its webhook's configured URL and records how it went.

Storage calls run in the executor; the POSTs run on the IOLoop with Tornado's
AsyncHTTPClient, at most `api.webhook_delivery.concurrency` at once, each given 10 seconds and
never following a redirect. Any API process may send any delivery: the claims make one of
them send each, and a claim left by a process that died runs out and is taken over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tasker import __version__
from tasker.api.batching import Batcher
from tasker.clock import utcnow, utcnow_precise
from tasker.config import ApiConfig, WebhookConfig
from tasker.errors import StorageUnavailable
from tasker.storage.database import Database
from tasker.storage.webhooks import Attempt, Delivery, Subscription, WebhookStore
from tasker.webhooks import POST_TIMEOUT, Retry, next_attempt, shown_url, signed_headers, webhook_key

log = logging.getLogger(__name__)
# A claim outlives the POST made under it, with room to record how it went.
CLAIM_SECONDS = 3 * POST_TIMEOUT
PRUNE_EVERY = 60.0
# Seconds a stopping API gives the POSTs under way; the claims of those still unanswered
# are given back, and the deliveries sent again by whichever API process comes first.
STOP_GRACE = 3.0
RunBlocking = Callable[..., Awaitable[Any]]


def webhook_sender(api: ApiConfig, database: Database, run_blocking: RunBlocking) -> WebhookSender | None:
    """The sender of `api.webhooks`, or None when none is configured."""
    if not api.webhooks:
        return None
    return WebhookSender(api, WebhookStore(database), run_blocking)


class WebhookSender:
    """Delivers the events the configured webhooks want, each to its own URL only."""

    def __init__(self, api: ApiConfig, store: WebhookStore, run_blocking: RunBlocking) -> None:
        self.settings = api.webhook_delivery
        self.targets: dict[str, WebhookConfig] = {webhook_key(w.url): w for w in api.webhooks}
        self.subscriptions = [
            Subscription(key, frozenset(w.types), frozenset(w.events)) for key, w in self.targets.items()
        ]
        self.retry = Retry(self.settings.first_retry, self.settings.max_retry_delay, self.settings.give_up_after)
        self.store = store
        self.run_blocking = run_blocking
        self._client = AsyncHTTPClient(force_instance=True, max_clients=self.settings.concurrency)
        self._recording = Batcher(self._record, run_blocking)
        self._sending: dict[asyncio.Future, tuple[Delivery, str]] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Future] = []
        self._next_prune = 0.0
        self._stopping = False

    def start(self) -> None:
        """Start making deliveries of new events, and sending them."""
        for key, webhook in self.targets.items():
            log.info("webhook %s (%s): delivering to %s", key, ", ".join(webhook.events), shown_url(webhook.url))
        self._loops = [asyncio.ensure_future(self._producing()), asyncio.ensure_future(self._claiming())]

    async def stop(self) -> None:
        """Stop claiming; give the POSTs under way a moment, then give back the claims of the rest."""
        self._stopping = True
        self._wake.set()
        if self._loops:
            producing, claiming = self._loops
            producing.cancel()  # harmless: a round's deliveries are made in one transaction, or not
            # A claim under way finishes, so that what it claimed is sent or given back.
            await asyncio.wait(self._loops, timeout=STOP_GRACE)
            claiming.cancel()
            await asyncio.gather(*self._loops, return_exceptions=True)
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=STOP_GRACE)
        left = dict(self._sending)
        for future in left:
            future.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        by_claim: dict[str, list[Delivery]] = {}
        for delivery, token in left.values():
            by_claim.setdefault(token, []).append(delivery)
        try:
            for token, deliveries in by_claim.items():
                await self.run_blocking(self.store.release, deliveries, token)
        except StorageUnavailable as exc:
            log.warning("%d webhook deliveries left claimed until their claims run out: %s", len(left), exc)
        self._client.close()

    async def produce(self) -> bool:
        """Make the deliveries of new events (and prune now and then); whether more may wait."""
        now = utcnow()
        more = await self.run_blocking(self.store.produce, self.subscriptions, now)
        self._wake.set()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            keep, forget = self.settings.retention, self.settings.give_up_after
            await self.run_blocking(self.store.prune, list(self.targets), now, keep, forget)
        return more

    async def claim(self) -> bool:
        """Claim due deliveries for the free places among the POSTs under way and start sending
        them; whether every place was filled (more may be due)."""
        free = self.settings.concurrency - len(self._sending)
        if free <= 0:
            return False
        claim = await self.run_blocking(self.store.claim, list(self.targets), utcnow(), free, CLAIM_SECONDS)
        for delivery in claim.deliveries:
            future = asyncio.ensure_future(self._deliver(delivery, claim.token))
            self._sending[future] = (delivery, claim.token)
            future.add_done_callback(self._sent)
        return len(claim.deliveries) == free

    async def _producing(self) -> None:
        while True:
            if not await self._safely(self.produce):
                await asyncio.sleep(self.settings.interval)

    async def _claiming(self) -> None:
        # Woken when deliveries were made, and when half the places for POSTs are free: under
        # load one claim fills many places, rather than one claim for each POST that ends.
        while not self._stopping:
            self._wake.clear()
            if not await self._safely(self.claim):
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.interval)
                except asyncio.TimeoutError:
                    pass

    async def _safely(self, step: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return await step()
        except StorageUnavailable as exc:
            log.warning("webhook deliveries wait for the database: %s", exc)
        except Exception:
            log.exception("webhook %s failed", step.__name__)
        return False

    async def _deliver(self, delivery: Delivery, token: str) -> None:
        webhook = self.targets[delivery.webhook]
        error = await self._post(webhook, delivery)
        attempts = delivery.attempts + 1
        next_time = (
            None if error is None else next_attempt(attempts, delivery.created_time, utcnow_precise(), self.retry)
        )
        where = "webhook %s: event %d of task %s (%s)" % (
            shown_url(webhook.url),
            delivery.event_id,
            delivery.identifier,
            delivery.type,
        )
        if error is None:
            log.debug("%s delivered (attempt %d)", where, attempts)
        elif next_time is None:
            log.warning("%s given up after %d attempts: %s", where, attempts, error)
        else:
            log.info("%s not delivered (attempt %d: %s), tried again at %s", where, attempts, error, next_time)
        await self._recording.submit(Attempt(delivery, token, error, next_time))

    async def _post(self, webhook: WebhookConfig, delivery: Delivery) -> str | None:
        """POST one delivery; None when answered with a 2xx, else what went wrong."""
        body = delivery.body.encode()
        headers = signed_headers(str(delivery.id), webhook.secret, body, time.time())
        headers["User-Agent"] = "tasker/%s" % __version__
        request = HTTPRequest(
            webhook.url,
            method="POST",
            body=body,
            headers=headers,
            follow_redirects=False,
            connect_timeout=POST_TIMEOUT,
            request_timeout=POST_TIMEOUT,
            streaming_callback=_discard,  # the answer's body is not wanted, nor kept
            decompress_response=False,
        )
        try:
            response = await self._client.fetch(request, raise_error=False)
        except Exception as exc:  # not answered: refused, timed out, TLS, DNS
            return ("%s: %s" % (type(exc).__name__, exc))[:200]
        if 200 <= response.code < 300:
            return None
        if 300 <= response.code < 400:
            return "HTTP %d: redirects are not followed" % response.code
        return "HTTP %d" % response.code

    def _record(self, attempts: list[Attempt]) -> list[bool]:
        return self.store.record(attempts, utcnow())

    def _sent(self, future: asyncio.Future) -> None:
        delivery, _ = self._sending.pop(future)
        if len(self._sending) <= self.settings.concurrency // 2:
            self._wake.set()
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.warning(
                "webhook delivery %d (task %s) not recorded; sent again once its claim runs out: %s",
                delivery.id,
                delivery.identifier,
                exc,
            )


def _discard(chunk: bytes) -> None:
    """Drop a piece of a receiver's answer."""
