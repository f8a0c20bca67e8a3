"""`scripts/ensure-services` decides what to install: run against fake paths, never the real servers.

Every run points the script at server programs in a temporary folder and at ports of this
test (closed ones, or sockets it listens on), and puts a recording `apt-get` first on PATH,
so nothing is installed and RabbitMQ and MariaDB on 5672 and 3306 are never touched.
"""

from __future__ import annotations

import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "ensure-services"
RECORDER = """#!/bin/sh
printf '%s|%s\\n' "${DEBIAN_FRONTEND:-}" "$*" >> "$(dirname "$0")/calls"
"""


@dataclass(frozen=True)
class Machine:
    """A pretend machine: where the fake programs live and what the stubs recorded."""

    folder: Path
    rabbitmq_server: Path
    mariadbd: Path

    def apt_calls(self) -> list[tuple[str, list[str]]]:
        """(DEBIAN_FRONTEND, arguments) of every `apt-get` run, in order."""
        calls = self.folder / "bin" / "calls"
        if not calls.exists():
            return []
        lines = calls.read_text().splitlines()
        return [(line.split("|")[0], line.split("|", 1)[1].split()) for line in lines]

    def install_server(self, path: Path) -> None:
        """Put an executable at a server's path that records being run (it must not be)."""
        path.write_text("#!/bin/sh\necho ran >> %s\n" % (self.folder / "servers-ran"))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def servers_ran(self) -> bool:
        """Whether any fake server program was started."""
        return (self.folder / "servers-ran").exists()


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    """A folder with a recording apt-get and no server programs."""
    (tmp_path / "bin").mkdir()
    apt_get = tmp_path / "bin" / "apt-get"
    apt_get.write_text(RECORDER)
    apt_get.chmod(0o755)
    return Machine(tmp_path, tmp_path / "rabbitmq-server", tmp_path / "mariadbd")


@pytest.fixture
def listening() -> Iterator[list[int]]:
    """Two ports something listens on, standing in for running servers."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    yield [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()


def closed_ports() -> list[int]:
    """Two ports nothing listens on (bound, then released)."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def ensure_services(machine: Machine, as_root: bool, ports: list[int]) -> subprocess.CompletedProcess:
    """Run the script on the pretend machine."""
    environ = {
        "PATH": "%s:/usr/bin:/bin" % (machine.folder / "bin"),
        "HOME": str(machine.folder),
        "TASKER_AS_ROOT": "1" if as_root else "0",
        "TASKER_RABBITMQ_SERVER": str(machine.rabbitmq_server),
        "TASKER_MARIADBD": str(machine.mariadbd),
        "TASKER_RABBITMQ_PORT": str(ports[0]),
        "TASKER_MARIADB_PORT": str(ports[1]),
        "TASKER_SERVICE_TIMEOUT": "1",
    }
    return subprocess.run([str(SCRIPT)], env=environ, capture_output=True, text=True, timeout=60)


def test_as_root_it_updates_once_and_installs_both_missing_servers(machine: Machine) -> None:
    ensure_services(machine, as_root=True, ports=closed_ports())
    calls = machine.apt_calls()
    assert len(calls) == 2 and "update" in calls[0][1] and "install" in calls[1][1], calls
    frontend, install = calls[1]
    assert frontend == "noninteractive"
    assert "-y" in install
    assert install[-2:] == ["rabbitmq-server", "mariadb-server"]


def test_as_root_it_installs_only_the_server_that_is_missing(machine: Machine, listening: list[int]) -> None:
    ensure_services(machine, as_root=True, ports=[listening[0], closed_ports()[1]])
    install = machine.apt_calls()[-1][1]
    assert "mariadb-server" in install and "rabbitmq-server" not in install


def test_as_another_user_it_names_the_one_command_and_installs_nothing(machine: Machine) -> None:
    done = ensure_services(machine, as_root=False, ports=closed_ports())
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "rabbitmq-server mariadb-server" in lines[0]
    assert lines[0].endswith("run sudo %s" % SCRIPT)
    assert machine.apt_calls() == []


def test_with_both_servers_installed_and_answering_it_runs_no_apt_get(machine: Machine, listening: list[int]) -> None:
    machine.install_server(machine.rabbitmq_server)
    machine.install_server(machine.mariadbd)
    done = ensure_services(machine, as_root=True, ports=listening)
    assert done.returncode == 0, done.stderr
    assert machine.apt_calls() == [] and not machine.servers_ran()
    assert done.stdout == done.stderr == ""
