"""`bin/manager --endpoint E --tasktype T --mode M`: serve one endpoint's queue of one task type."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from tasker.cli.common import add_mode_option, die, run, setup_logging
from tasker.config import NAME_PATTERN, load_config
from tasker.errors import HandlerModuleError
from tasker.extensions import manager_extensions
from tasker.hooks import Hooks
from tasker.manager.manager import Manager
from tasker.manager.workhorse import WorkHorse
from tasker.messaging.consumer import Consumer
from tasker.storage import ResponseStore, open_database

log = logging.getLogger("tasker.manager")


def main() -> int:
    """Parse the command line, refuse what is not configured, and run until stopped."""
    parser = argparse.ArgumentParser(
        prog="manager", description="Run the tasker manager of one endpoint and task type."
    )
    parser.add_argument("--endpoint", "-e", required=True, help="the name of this endpoint")
    parser.add_argument("--tasktype", "-t", required=True, help="the task type to serve")
    add_mode_option(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    args = parser.parse_args()
    if not NAME_PATTERN.match(args.endpoint):
        die("endpoint name %r is not 1 to 50 characters from A-Z a-z 0-9 . _ : -" % args.endpoint)
    config = load_config(args.mode)
    if args.tasktype not in config.task_types:
        die(
            "task type %r is not configured in run mode %s (task_types: %s)"
            % (args.tasktype, args.mode, ", ".join(config.task_types))
        )
    setup_logging(args.verbose, config, type=args.tasktype, endpoint=args.endpoint)
    horse = WorkHorse(
        config.handler_module(args.tasktype),
        dict(config.manager.handler_settings.get(args.tasktype, {})),
        grace=config.manager.cancel_grace,
        max_result=config.manager.max_result,
        max_output=config.manager.max_output,
    )
    try:
        horse.start()
    except HandlerModuleError as exc:
        die(str(exc))
    database = open_database(config.manager.db)
    settings = config.manager.message_queue
    manager = Manager(
        lambda on_delivery: Consumer(settings, args.tasktype, args.endpoint, on_delivery),
        ResponseStore(database),
        horse,
        args.tasktype,
        args.endpoint,
        hooks=Hooks(manager_extensions(config)),
        retry_delay=config.manager.db_retry_delay,
        consumer_timeout=settings.consumer_timeout,
        orphan_interval=config.manager.orphan_check_interval,
        max_crashes=config.manager.max_crashes,
        heartbeat_interval=config.manager.heartbeat_interval,
    )

    def on_signal(signum, frame) -> None:
        # Not on the signal frame: shutting down talks to the connection's loop.
        threading.Thread(target=manager.shutdown, name="shutdown").start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return manager.run()
    finally:
        database.close()


def main_entry() -> None:
    """Console-script entry point."""
    run(main)


if __name__ == "__main__":
    main_entry()
