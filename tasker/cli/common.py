"""What every entry point shares: the run mode option, logging, one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable, NoReturn

from tasker.cli.log_format import JsonFormatter, SecretMask, TextFormatter, config_secrets
from tasker.config import Config
from tasker.errors import TaskerError


def add_mode_option(parser: argparse.ArgumentParser) -> None:
    """`--mode M`: which `config/<M>.config.yaml` to use (default: $TASKER_MODE or development)."""
    parser.add_argument(
        "--mode",
        "-m",
        default=os.environ.get("TASKER_MODE", "development"),
        help="run mode: reads config/<mode>.config.yaml (default: %(default)s)",
    )


def setup_logging(verbose: bool = False, config: Config | None = None, **fields: str) -> None:
    """Log to stderr, which supervisord writes under var/log/: as `config.logging.format` says
    (text without a config), the config's secrets masked, `fields` on every JSON line."""
    mask = SecretMask(config_secrets(config) if config is not None else ())
    json_lines = config is not None and config.logging.format == "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(mask, fields) if json_lines else TextFormatter(mask))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def die(message: str, status: int = 2) -> NoReturn:
    """Print one line to stderr and exit non-zero."""
    print("%s: error: %s" % (os.path.basename(sys.argv[0]), message), file=sys.stderr)
    sys.exit(status)


def run(main: Callable[[], int]) -> NoReturn:
    """Run an entry point; tasker's errors end it with one line instead of a traceback."""
    try:
        status = main()
    except TaskerError as exc:
        die(str(exc))
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)
