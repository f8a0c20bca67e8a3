"""`bin/api --mode M`: serve the REST API of a run mode."""

from __future__ import annotations

import argparse
import asyncio

from tasker.api.server import serve
from tasker.cli.common import add_mode_option, run, setup_logging
from tasker.config import load_config


def main() -> int:
    """Parse the command line and serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="api", description="Serve the tasker REST API.")
    add_mode_option(parser)
    parser.add_argument("--port", type=int, help="listen on this port instead of api.port")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    args = parser.parse_args()
    config = load_config(args.mode)
    setup_logging(args.verbose, config)
    return asyncio.run(serve(config, args.port or config.api.port))


def main_entry() -> None:
    """Console-script entry point."""
    run(main)


if __name__ == "__main__":
    main_entry()
