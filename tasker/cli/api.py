"""`bin/api --mode M`: serve the REST API of a run mode."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import tornado.httpserver

from tasker.api.app import make_app
from tasker.api.dispatch import Dispatcher
from tasker.cli.common import add_mode_option, run, setup_logging
from tasker.config import Config, load_config
from tasker.messaging.publisher import Publisher
from tasker.storage import TaskStore, open_database

log = logging.getLogger("tasker.api")
# Bodies are checked against api.max_body_size by the request handler, which answers 413 in
# JSON; the server's own cap only bounds chunked bodies of unknown length.
SERVER_BODY_CAP = 64 * 1024 * 1024


def main() -> int:
    """Parse the command line and serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="api", description="Serve the tasker REST API.")
    add_mode_option(parser)
    parser.add_argument("--port", type=int, help="listen on this port instead of api.port")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    args = parser.parse_args()
    setup_logging(args.verbose)
    config = load_config(args.mode)
    return asyncio.run(serve(config, args.port or config.api.port))


async def serve(config: Config, port: int) -> int:
    """Build everything once, listen, and shut down cleanly on a signal."""
    database = open_database(config.manager.db)
    executor = ThreadPoolExecutor(config.api.executor_threads, thread_name_prefix="storage")
    dispatcher = Dispatcher(config.api, TaskStore(database), Publisher(config.manager.message_queue), executor)
    app = make_app(config, dispatcher)
    server = tornado.httpserver.HTTPServer(app, max_body_size=max(SERVER_BODY_CAP, config.api.max_body_size))
    server.listen(port, address=config.api.address)
    dispatcher.start()
    log.info("tasker API (%s) listening on %s:%d", config.mode, config.api.address, port)

    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()

    log.info("tasker API stopping")
    server.stop()
    await server.close_all_connections()
    await dispatcher.stop()
    executor.shutdown(wait=True)
    database.close()
    return 0


def main_entry() -> None:
    """Console-script entry point."""
    run(main)


if __name__ == "__main__":
    main_entry()
