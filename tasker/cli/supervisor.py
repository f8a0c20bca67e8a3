"""`bin/supervisord --mode M` and `bin/supervisorctl --mode M ...`: supervisor for a run mode.

The supervisor configuration is rendered from the run mode's config at each start: one
program for the API and one per (task type, endpoint) of `endpoints`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tasker.cli.common import add_mode_option, run
from tasker.config import PROJECT_ROOT, Config, load_config


def program_name(task_type: str, endpoint: str) -> str:
    """The supervisor program of one manager."""
    return "manager-%s-%s" % (task_type, endpoint.replace(":", "_"))


def render(config: Config, bin_dir: Path) -> str:
    """The supervisord.conf of a run mode; credentials come from the config's environment."""
    log_dir, run_dir = config.path(config.supervisor.log_dir), config.path(config.supervisor.run_dir)
    socket = run_dir / ("supervisor-%s.sock" % config.mode)
    auth = ""
    if config.supervisor.password:
        auth = "username = %s\npassword = %s\n" % (config.supervisor.username, config.supervisor.password)
    sections = [
        "[unix_http_server]\nfile = %s\nchmod = 0700\n%s" % (socket, auth),
        "[supervisord]\nlogfile = %s\npidfile = %s\nchildlogdir = %s\ndirectory = %s\n"
        "identifier = tasker-%s\n"
        % (
            log_dir / "supervisord.log",
            run_dir / ("supervisord-%s.pid" % config.mode),
            log_dir,
            PROJECT_ROOT,
            config.mode,
        ),
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        "[supervisorctl]\nserverurl = unix://%s\n%s" % (socket, auth),
        _program("api", "%s --mode %s" % (bin_dir / "api", config.mode), log_dir, 15),
    ]
    if config.supervisor.http_port:
        sections.insert(1, "[inet_http_server]\nport = 127.0.0.1:%d\n%s" % (config.supervisor.http_port, auth))
    for task_type in config.task_types:
        for endpoint in config.endpoints.get(task_type, []):
            command = "%s --endpoint %s --tasktype %s --mode %s" % (
                bin_dir / "manager",
                endpoint,
                task_type,
                config.mode,
            )
            sections.append(
                _program(program_name(task_type, endpoint), command, log_dir, config.supervisor.stopwaitsecs)
            )
    return "\n".join(sections)


def _program(name: str, command: str, log_dir: Path, stopwaitsecs: int) -> str:
    # SIGTERM to the program only: a manager finishes its run in hand, and the processes its
    # handler started are not signalled. SIGKILL, after stopwaitsecs, goes to the whole group.
    return (
        "[program:%s]\ncommand = %s\nautostart = true\nautorestart = true\nstartsecs = 2\n"
        "startretries = 100\nstopsignal = TERM\nstopwaitsecs = %d\nstopasgroup = false\nkillasgroup = true\n"
        "redirect_stderr = true\nstdout_logfile = %s\nstdout_logfile_maxbytes = 20MB\n"
        "stdout_logfile_backups = 5\n" % (name, command, stopwaitsecs, log_dir / ("%s.log" % name))
    )


def write_conf(config: Config, bin_dir: Path) -> Path:
    """Render the configuration into the run directory (mode 0600: it may hold credentials)."""
    run_dir = config.path(config.supervisor.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.path(config.supervisor.log_dir).mkdir(parents=True, exist_ok=True)
    path = run_dir / ("supervisord-%s.conf" % config.mode)
    text = render(config, bin_dir)
    if path.exists() and path.read_text() == text:
        return path
    # Written aside and renamed over: a supervisord reading it never sees half a file.
    partial = path.with_name("%s.%d.tmp" % (path.name, os.getpid()))
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as conf:
        conf.write(text)
    os.replace(partial, path)
    return path


def _parse(prog: str) -> tuple[Config, Path, list[str]]:
    parser = argparse.ArgumentParser(prog=prog, add_help=False)
    add_mode_option(parser)
    parser.add_argument("--bin-dir", default=os.environ.get("TASKER_BIN_DIR", str(PROJECT_ROOT / "bin")))
    args, rest = parser.parse_known_args()
    return load_config(args.mode), Path(args.bin_dir), rest


def supervisord_main() -> int:
    """Render the configuration and run supervisord with it (extra arguments pass through)."""
    from supervisor import supervisord

    config, bin_dir, rest = _parse("supervisord")
    supervisord.main(["-c", str(write_conf(config, bin_dir)), *rest])
    return 0


def supervisorctl_main() -> int:
    """Run supervisorctl against the supervisord of the run mode."""
    from supervisor import supervisorctl

    config, bin_dir, rest = _parse("supervisorctl")
    supervisorctl.main(["-c", str(write_conf(config, bin_dir)), *rest])
    return 0


def supervisord_entry() -> None:
    """Console-script entry point of `supervisord`."""
    run(supervisord_main)


def supervisorctl_entry() -> None:
    """Console-script entry point of `supervisorctl`."""
    run(supervisorctl_main)


if __name__ == "__main__":
    sys.exit("use bin/supervisord or bin/supervisorctl")
