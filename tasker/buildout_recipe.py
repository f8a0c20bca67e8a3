"""`recipe = tasker:supervisor` in buildout.cfg: render the supervisor config for buildout's scripts.

The programs of the rendered config run the scripts in buildout's bin-directory (not the
tracked `bin/`), so `build/bin/supervisord` starts `build/bin/api` and `build/bin/manager`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from tasker.cli.supervisor import write_conf
from tasker.config import load_config
from tasker.errors import ConfigError


class SupervisorConfigRecipe:
    """Write `<supervisor.run_dir>/supervisord-<mode>.conf`; options `mode` and `bin-directory`."""

    def __init__(self, buildout: Any, name: str, options: MutableMapping[str, str]) -> None:
        self.name = name
        self.mode = options.setdefault("mode", "development")
        self.bin_dir = Path(options.setdefault("bin-directory", buildout["buildout"]["bin-directory"]))

    def install(self) -> tuple[str, ...]:
        """Render the config; a config that does not load is a one-line buildout error."""
        from zc.buildout import UserError

        try:
            config = load_config(self.mode)
        except ConfigError as exc:
            # Passwords usually come from var/tasker.env, which `make var/tasker.env` generates.
            raise UserError(
                "[%s] run mode %s: %s (the environment or var/tasker.env provides "
                "variables)" % (self.name, self.mode, exc)
            ) from exc
        return (str(write_conf(config, self.bin_dir)),)

    # The YAML config may have changed although buildout.cfg did not: render again every run.
    update = install
