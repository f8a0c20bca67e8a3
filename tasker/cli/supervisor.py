"""`bin/supervisord --mode M` and `bin/supervisorctl --mode M ...`: supervisor for a run mode.

The supervisor configuration is rendered from the run mode's config at each start: one
program for the API and one per (task type, endpoint) of `endpoints`, run as `supervisor.user`
when one is named. Logs are not readable by others: supervisord runs with umask 027 and the
log folder is mode 0750.
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from pathlib import Path

from tasker.cli.common import add_mode_option, run
from tasker.config import PROJECT_ROOT, Config, SupervisorConfig, load_config
from tasker.errors import ConfigError

# Files supervisord and its programs create are closed to others (0640, folders 0750).
UMASK = 0o027
# The log folder passes its group on to the log files created in it (setgid), so the programs'
# user can read its logs although supervisord, as root, writes them.
LOG_DIR_MODE = 0o2750
RUN_DIR_MODE = 0o750
ENV_FILE_MODE = 0o640


def program_name(task_type: str, endpoint: str) -> str:
    """The supervisor program of one manager."""
    return "manager-%s-%s" % (task_type, endpoint.replace(":", "_"))


def program_user(settings: SupervisorConfig) -> pwd.struct_passwd | None:
    """The account `supervisor.user` names, or None: the programs run as supervisord's user."""
    if not settings.user:
        return None
    try:
        return pwd.getpwnam(settings.user)
    except KeyError:
        raise ConfigError(
            "supervisor.user: there is no user %r on this machine (scripts/provision creates tasker; "
            "an empty supervisor.user runs the programs as the invoking user)" % settings.user
        ) from None


def check(settings: SupervisorConfig) -> None:
    """Refuse what would open supervisord to others: an HTTP port without a password."""
    if settings.http_port and not settings.password:
        raise ConfigError(
            "supervisor.http_port is %d but supervisor.password is empty: set a password "
            "(TASKER_SUPERVISOR_PASSWORD) or leave http_port 0" % settings.http_port
        )


def render(config: Config, bin_dir: Path) -> str:
    """The supervisord.conf of a run mode; credentials come from the config's environment."""
    check(config.supervisor)
    user = _user_lines(program_user(config.supervisor))
    log_dir, run_dir = config.path(config.supervisor.log_dir), config.path(config.supervisor.run_dir)
    socket = run_dir / ("supervisor-%s.sock" % config.mode)
    auth = ""
    if config.supervisor.password:
        auth = "username = %s\npassword = %s\n" % (config.supervisor.username, config.supervisor.password)
    sections = [
        "[unix_http_server]\nfile = %s\nchmod = 0700\n%s" % (socket, auth),
        "[supervisord]\nlogfile = %s\npidfile = %s\nchildlogdir = %s\ndirectory = %s\n"
        "identifier = tasker-%s\numask = %03o\n"
        % (
            log_dir / "supervisord.log",
            run_dir / ("supervisord-%s.pid" % config.mode),
            log_dir,
            PROJECT_ROOT,
            config.mode,
            UMASK,
        ),
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        "[supervisorctl]\nserverurl = unix://%s\n%s" % (socket, auth),
        _program("api", "%s --mode %s" % (bin_dir / "api", config.mode), log_dir, 15, user),
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
                _program(program_name(task_type, endpoint), command, log_dir, config.supervisor.stopwaitsecs, user)
            )
    return "\n".join(sections)


def _program(name: str, command: str, log_dir: Path, stopwaitsecs: int, user: str) -> str:
    # SIGTERM to the program only: a manager finishes its run in hand, and the processes its
    # handler started are not signalled. SIGKILL, after stopwaitsecs, goes to the whole group.
    return (
        "[program:%s]\ncommand = %s\nautostart = true\nautorestart = true\nstartsecs = 2\n"
        "startretries = 100\nstopsignal = TERM\nstopwaitsecs = %d\nstopasgroup = false\nkillasgroup = true\n"
        "redirect_stderr = true\nstdout_logfile = %s\nstdout_logfile_maxbytes = 20MB\n"
        "stdout_logfile_backups = 5\n%s" % (name, command, stopwaitsecs, log_dir / ("%s.log" % name), user)
    )


def _user_lines(account: pwd.struct_passwd | None) -> str:
    """A program's `user` and the login variables that go with it (supervisord keeps its own)."""
    if account is None:
        return ""
    return 'user = %s\nenvironment = HOME="%s",USER="%s",LOGNAME="%s"\n' % (
        account.pw_name,
        account.pw_dir,
        account.pw_name,
        account.pw_name,
    )


def write_conf(config: Config, bin_dir: Path) -> Path:
    """Render the configuration into the run directory (mode 0600: it may hold credentials)."""
    text = render(config, bin_dir)
    run_dir = config.path(config.supervisor.run_dir)
    prepare_dirs(config)
    path = run_dir / ("supervisord-%s.conf" % config.mode)
    if path.exists() and path.read_text() == text:
        return path
    # Written aside and renamed over: a supervisord reading it never sees half a file.
    partial = path.with_name("%s.%d.tmp" % (path.name, os.getpid()))
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as conf:
        conf.write(text)
    os.replace(partial, path)
    return path


def prepare_dirs(config: Config) -> None:
    """Create the log and run folders closed to others, and close log files left readable.

    Run as root with `supervisor.user`, the log folder and its files get that user's group (root
    stays their owner: supervisord, as root, writes there, so the user must not own the folder),
    and so does the env file the programs read their passwords from.
    """
    account = program_user(config.supervisor) if os.geteuid() == 0 else None
    group = account.pw_gid if account else -1
    log_dir, run_dir = config.path(config.supervisor.log_dir), config.path(config.supervisor.run_dir)
    _make_dir(run_dir, RUN_DIR_MODE, -1)
    _make_dir(log_dir, LOG_DIR_MODE if account else LOG_DIR_MODE & 0o777, group)
    for log_file in log_dir.iterdir():
        if log_file.is_file() and not log_file.is_symlink():
            _restrict(log_file, log_file.stat().st_mode & 0o777 & ~UMASK, group)
    if account:
        _share_env_file(group)


def _make_dir(path: Path, mode: int, group: int) -> None:
    path.mkdir(mode=mode & 0o777, parents=True, exist_ok=True)
    _restrict(path, mode, group)


def _restrict(path: Path, mode: int, group: int) -> None:
    """Give `path` the mode (and group, unless -1) if it is ours to change; leave it otherwise."""
    if path.stat().st_uid != os.geteuid():
        return
    if group != -1:
        os.chown(path, -1, group)
    os.chmod(path, mode)


def _share_env_file(group: int) -> None:
    """Let the programs' user read the env file (`make run` writes it 0600 as root)."""
    path = Path(os.environ.get("TASKER_ENV_FILE") or PROJECT_ROOT / "var" / "tasker.env")
    if path.is_file() and not path.is_symlink():
        _restrict(path, ENV_FILE_MODE, group)


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
    account = program_user(config.supervisor)
    if account and os.geteuid() not in (0, account.pw_uid):
        raise ConfigError(
            "supervisor.user is %s: start supervisord as root (it runs the programs as that user), "
            "or leave supervisor.user empty" % account.pw_name
        )
    # Set before supervisord opens its own log and pid file (its `umask` applies only once
    # it daemonizes).
    os.umask(UMASK)
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
