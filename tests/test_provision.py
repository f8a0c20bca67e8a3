"""`scripts/provision`, the Vagrant VM's provisioner, run twice on this machine kind.

The machine is the project's kind (Debian 12, root, RabbitMQ and MariaDB installed), so the
script finds everything installed and brings up the development system on port 8888, as in
the VM. That port belongs to the development run mode: a development supervisord already
running is shut down first, and the one provisioned here is shut down afterwards. The random
MYSQL_PASSWD stays in var/tasker.env, where a later plain `make run` finds it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Iterator

import pymysql
import pytest

from tests.helpers import ROOT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow, pytest.mark.long]

API_PORT = 8888
HEALTH_URL = "http://127.0.0.1:%d/health" % API_PORT
PROGRAMS = (
    "api",
    "manager-backup-console1",
    "manager-backup-console2",
    "manager-worker-console1",
    "manager-worker-console2",
)
# One run takes about 10 s here; the limit leaves room for make run's own 60 s health wait.
RUN_TIMEOUT = 90
# Variables that would point make or bin/* at another run mode, config or env file
# (MAKEFLAGS carries `make test VAR=...` overrides into a nested make).
FOREIGN_VARIABLES = (
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MODE",
    "API_PORT",
    "TASKER_MODE",
    "TASKER_CONFIG_DIR",
    "TASKER_ENV_FILE",
    "TASKER_BIN_DIR",
    "TASKER_PYTHON",
)


@dataclass(frozen=True)
class Run:
    """One run of scripts/provision: exit status, output (stdout and stderr) and duration."""

    returncode: int
    output: str
    seconds: float


@dataclass(frozen=True)
class Provisioned:
    """What the module's tests look at: the password used and the two runs."""

    password: str
    environ: dict[str, str]
    first: Run
    second: Run


def require_root() -> None:
    """Skip locally when not root; under CI the test must run, so it fails instead."""
    if os.geteuid() == 0:
        return
    message = "scripts/provision installs packages and manages services: it needs root"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def development_environ(password: str) -> dict[str, str]:
    """This process's environment with MYSQL_PASSWD set and nothing that redirects make or bin/*."""
    environ = {name: value for name, value in os.environ.items() if name not in FOREIGN_VARIABLES}
    environ["MYSQL_PASSWD"] = password
    return environ


def port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def supervisorctl(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run bin/supervisorctl against the development supervisord."""
    return subprocess.run(
        [str(ROOT / "bin" / "supervisorctl"), "--mode", "development", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=150,
    )


def shut_down_development_supervisord(environ: dict[str, str]) -> None:
    """Stop the development supervisord, if one runs, and wait until port 8888 is free."""
    supervisorctl(environ, "shutdown")
    wait_for(lambda: not port_open(API_PORT), 150, 0.5, "port %d to be free after a development shutdown" % API_PORT)


def provision(environ: dict[str, str]) -> Run:
    """Run scripts/provision once and collect what it printed."""
    start = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "provision")],
        cwd="/",
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    return Run(result.returncode, result.stdout, time.monotonic() - start)


def program_states(environ: dict[str, str]) -> dict[str, str]:
    """Map each supervised program to its state, from `supervisorctl status`."""
    lines = supervisorctl(environ, "status").stdout.splitlines()
    return {line.split()[0]: line.split()[1] for line in lines if len(line.split()) >= 2}


@pytest.fixture(scope="module")
def provisioned() -> Iterator[Provisioned]:
    """scripts/provision run twice with a fresh MYSQL_PASSWD; supervisord shut down afterwards."""
    require_root()
    password = secrets.token_hex(16)
    environ = development_environ(password)
    shut_down_development_supervisord(environ)
    try:
        first = provision(environ)
        second = provision(environ)
        print("scripts/provision: first run %.1fs, second run %.1fs" % (first.seconds, second.seconds))
        yield Provisioned(password, environ, first, second)
    finally:
        shut_down_development_supervisord(environ)


def test_provision_succeeds_twice_in_a_row(provisioned: Provisioned) -> None:
    assert provisioned.first.returncode == 0, provisioned.first.output
    assert provisioned.second.returncode == 0, provisioned.second.output


def test_second_provision_installs_nothing_and_keeps_the_password_file(provisioned: Provisioned) -> None:
    assert "provision: packages: nothing to install" in provisioned.second.output
    assert "var/tasker.env: already holds this MYSQL_PASSWD" in provisioned.second.output
    assert "shutting it down" not in provisioned.second.output


def test_provision_never_prints_the_password(provisioned: Provisioned) -> None:
    assert provisioned.password not in provisioned.first.output
    assert provisioned.password not in provisioned.second.output


def test_api_answers_health_after_provision(provisioned: Provisioned) -> None:
    status = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", HEALTH_URL],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    assert status == "200"


def test_supervisord_runs_the_api_and_four_managers(provisioned: Provisioned) -> None:
    def running() -> dict[str, str]:
        states = program_states(provisioned.environ)
        return {name: states.get(name, "MISSING") for name in PROGRAMS}

    wait_for(lambda: set(running().values()) == {"RUNNING"}, 30, 0.5, "the api and four managers RUNNING")
    assert running() == {name: "RUNNING" for name in PROGRAMS}


def test_tasker_mysql_user_logs_in_with_the_provisioned_password(provisioned: Provisioned) -> None:
    connection = pymysql.connect(
        host="127.0.0.1",
        port=3306,
        user="tasker",
        password=provisioned.password,
        database="tasker",
        connect_timeout=5,
    )
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchone()[0] == "tasker@127.0.0.1"
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", user="tasker", password=provisioned.password + "x", connect_timeout=5)


def test_provision_creates_the_tasker_system_user_once(provisioned: Provisioned) -> None:
    user = pwd.getpwnam("tasker")
    assert user.pw_uid < 1000, "a system user"
    assert user.pw_shell == "/usr/sbin/nologin"
    assert not os.path.exists(user.pw_dir)
    assert "provision: system user tasker: exists" in provisioned.second.output
