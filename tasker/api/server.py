"""Run the API: build storage, publisher and application once, listen, stop on a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from concurrent.futures import ThreadPoolExecutor

import tornado.httpserver

from tasker.api.app import make_app
from tasker.api.dispatch import Dispatcher
from tasker.api.event_hub import event_hub_of
from tasker.api.event_retention import EventRetention
from tasker.api.loop_watch import LoopWatch
from tasker.api.parsing import BodyParser
from tasker.api.webhooks import webhook_sender
from tasker.config import Config, TlsConfig
from tasker.errors import ConfigError
from tasker.extensions import api_extensions
from tasker.hooks import Hooks
from tasker.messaging.publisher import Publisher
from tasker.storage import TaskStore, open_database

log = logging.getLogger("tasker.api")
# Bodies are checked against api.max_body_size by the request handler, which answers 413 in
# JSON; the server's own cap only bounds chunked bodies of unknown length.
SERVER_BODY_CAP = 64 * 1024 * 1024


async def serve(config: Config, port: int) -> int:
    """Build everything once, listen, and shut down cleanly on a signal."""
    config.api.check_auth()
    database = open_database(config.manager.db, threads=config.api.executor_threads)
    executor = ThreadPoolExecutor(config.api.executor_threads, thread_name_prefix="storage")
    publisher = Publisher(config.manager.message_queue)
    hooks = Hooks(api_extensions(config))
    tasks = TaskStore(database, max_endpoints=config.api.max_endpoints)
    dispatcher = Dispatcher(config.api, tasks, publisher, executor, hooks)
    api = config.api
    body_parser = BodyParser(api.parse_processes, api.max_endpoints, api.max_payload_depth, api.max_timeout)
    loop_watch = LoopWatch(config.api.loop_stall_warning)
    events = event_hub_of(config.api, dispatcher)
    retention = EventRetention(events.feed, dispatcher.storage, config.api.event_retention)
    app = make_app(config, dispatcher, body_parser, loop_watch, events)
    server = tornado.httpserver.HTTPServer(
        app, max_body_size=max(SERVER_BODY_CAP, config.api.max_body_size), ssl_options=tls_context(config.api.tls)
    )
    server.listen(port, address=config.api.address)
    dispatcher.start()
    events.start()
    retention.start()
    webhooks = webhook_sender(config.api, database, dispatcher.storage)
    if webhooks is not None:
        webhooks.start()
    body_parser.start()
    watching = asyncio.ensure_future(loop_watch.run())
    scheme = "https" if config.api.tls.enabled else "http"
    log.info("tasker API (%s) listening on %s://%s:%d", config.mode, scheme, config.api.address, port)

    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()

    log.info("tasker API stopping")
    server.stop()
    await events.stop()  # event streams end, waiting requests answer, before connections close
    await retention.stop()
    await server.close_all_connections()
    watching.cancel()
    if webhooks is not None:
        await webhooks.stop()
    await dispatcher.stop()
    body_parser.close()
    executor.shutdown(wait=True)
    database.close()
    return 0


def tls_context(tls: TlsConfig) -> ssl.SSLContext | None:
    """The server's TLS context from `api.tls`, or None to serve plain HTTP.

    With `ca_file`, clients must present a certificate signed by it (mutual TLS).
    """
    if not tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.ca_file:
            context.load_verify_locations(tls.ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("api.tls: cannot load %s / %s: %s" % (tls.cert_file, tls.key_file, exc)) from exc
    return context
