"""`bin/initialize --mode M -d -r [--reset]`: create the database tables and the RabbitMQ vhost;
`bin/initialize --mode M --deregister TYPE ENDPOINT`: forget an endpoint and delete its queue
and its exchange."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging

from tasker.cli.common import add_mode_option, run, setup_logging
from tasker.config import Config, load_config
from tasker.messaging.admin import setup_vhost
from tasker.messaging.publisher import Publisher
from tasker.messaging.rights import endpoint_logins, uses_role_users
from tasker.storage import RegistrationStore, open_database

log = logging.getLogger("tasker.initialize")


def main() -> int:
    """Parse the command line and set up what was asked."""
    parser = argparse.ArgumentParser(prog="initialize", description="Set up tasker's database and RabbitMQ vhost.")
    add_mode_option(parser)
    parser.add_argument("-d", "--database", action="store_true", help="create or migrate the database tables")
    parser.add_argument(
        "-r", "--rabbitmq", action="store_true", help="create the RabbitMQ vhost, users, permissions and queues"
    )
    parser.add_argument(
        "--reset", action="store_true", help="drop what exists first (tables, or the vhost with its queues)"
    )
    parser.add_argument(
        "--deregister",
        nargs=2,
        metavar=("TYPE", "ENDPOINT"),
        help="forget that ENDPOINT serves TYPE and delete its queue with what it holds, and its exchange",
    )
    args = parser.parse_args()
    if not (args.database or args.rabbitmq or args.deregister):
        parser.error("say what to initialize: -d (database), -r (RabbitMQ), or both")
    setup_logging()
    config = load_config(args.mode)
    if args.deregister:
        task_type, endpoint = args.deregister
        if task_type not in config.task_types:
            parser.error("task type %r is not configured (task_types: %s)" % (task_type, ", ".join(config.task_types)))
        deregister(config, task_type, endpoint)
    if args.database:
        database = open_database(config.manager.db, timeout=False)
        try:
            database.upgrade_schema(reset=args.reset)
        finally:
            database.close()
        log.info("database tables are ready%s", " (reset)" if args.reset else "")
    if args.rabbitmq:
        setup_vhost(config.rabbitmq, config.manager.message_queue, reset=args.reset)
        asyncio.run(declare_queues(config))
    return 0


def deregister(config: Config, task_type: str, endpoint: str) -> None:
    """Forget that `endpoint` serves `task_type` (tasks without endpoints no longer go to it) and
    delete its queue and the exchange its manager copied messages through: nothing is kept for
    an endpoint that is gone. Unlike `DELETE /endpoints/<type>/<endpoint>`, it does not ask
    whether its manager is alive: the operator says it is gone."""
    database = open_database(config.manager.db)
    try:
        known = RegistrationStore(database).deregister(task_type, endpoint)
    finally:
        database.close()
    asyncio.run(_remove_from_broker(config, task_type, endpoint))
    log.info(
        "endpoint %s of %s deregistered%s; its queue and exchange are deleted",
        endpoint,
        task_type,
        "" if known else " (it was not registered)",
    )


async def _remove_from_broker(config: Config, task_type: str, endpoint: str) -> None:
    publisher = Publisher(config.manager.message_queue)
    try:
        await publisher.remove_endpoint(task_type, endpoint, unless_consumed=False)
    finally:
        await publisher.close()


async def declare_queues(config: Config) -> None:
    """Declare the tasks exchange and the queue of every known endpoint for every task type it
    may serve, so tasks published before a manager first starts wait for it."""
    for login, queues in declaration_plan(config).items():
        settings = dataclasses.replace(config.manager.message_queue, username=login[0], password=login[1])
        publisher = Publisher(settings)
        try:
            for task_type, endpoints in queues.items():
                await publisher.declare(task_type, endpoints)
        finally:
            await publisher.close()
    log.info("exchanges and endpoint queues are declared")


def declaration_plan(config: Config) -> dict[tuple[str, str], dict[str, list[str]]]:
    """Who declares what: (username, password) -> task type -> endpoints whose queues to declare.

    With one user for all, it declares the queues of the endpoints configured here. With users
    per role, every endpoint with a user of its own gets a queue for every task type, declared
    as that user: creating a queue takes the read right on it, which only that user has. The
    API's user declares the exchange.
    """
    settings = config.manager.message_queue
    if not uses_role_users(config.rabbitmq):
        login = (settings.username, settings.password)
        return {login: {task_type: list(config.endpoints.get(task_type, [])) for task_type in config.task_types}}
    logins = endpoint_logins(config.rabbitmq)
    configured = {endpoint for endpoints in config.endpoints.values() for endpoint in endpoints}
    for endpoint in sorted(configured - set(logins)):
        log.warning("endpoint %s has no user in rabbitmq.endpoint_users: its manager declares its queues", endpoint)
    plan: dict[tuple[str, str], dict[str, list[str]]] = {}
    api = config.rabbitmq.api_user
    if api.username:
        plan[(api.username, api.password)] = {task_type: [] for task_type in config.task_types}
    for endpoint, login in logins.items():
        for task_type in config.task_types:
            plan.setdefault(login, {}).setdefault(task_type, []).append(endpoint)
    return plan


def main_entry() -> None:
    """Console-script entry point."""
    run(main)


if __name__ == "__main__":
    main_entry()
