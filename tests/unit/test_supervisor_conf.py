"""The supervisor configuration rendered from a run mode's config."""

from __future__ import annotations

import configparser
from pathlib import Path

from tasker.cli.supervisor import render
from tasker.config import load_config


def parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read_string(text)
    return parser


def test_one_program_for_the_api_and_one_per_endpoint_and_task_type(monkeypatch):
    monkeypatch.setenv("MYSQL_PASSWD", "x")
    monkeypatch.setenv("RABBITMQ_PASSWD", "x")
    monkeypatch.setenv("TASKER_SUPERVISOR_PASSWORD", "from-the-environment")
    config = load_config("development")
    conf = parse(render(config, Path("/opt/tasker/bin")))
    programs = sorted(s for s in conf.sections() if s.startswith("program:"))
    assert programs == [
        "program:api",
        "program:manager-backup-console1",
        "program:manager-backup-console2",
        "program:manager-worker-console1",
        "program:manager-worker-console2",
    ]
    manager = conf["program:manager-worker-console2"]
    assert manager["command"] == "/opt/tasker/bin/manager --endpoint console2 --tasktype worker --mode development"
    assert manager["autorestart"] == "true" and manager["stopsignal"] == "TERM"
    assert manager["stopasgroup"] == "false", "a handler's own processes are not sent the SIGTERM"
    assert manager["killasgroup"] == "true", "the SIGKILL after stopwaitsecs reaches them all"
    assert int(manager["stopwaitsecs"]) == config.supervisor.stopwaitsecs == 120
    assert manager["stdout_logfile"].endswith("var/log/manager-worker-console2.log")
    assert conf["program:api"]["command"] == "/opt/tasker/bin/api --mode development"
    assert conf["unix_http_server"]["password"] == conf["supervisorctl"]["password"] == "from-the-environment"


def test_without_a_password_in_the_environment_there_is_none_in_the_file(monkeypatch):
    monkeypatch.setenv("MYSQL_PASSWD", "x")
    monkeypatch.setenv("RABBITMQ_PASSWD", "x")
    monkeypatch.setenv("TASKER_ENV_FILE", "/nonexistent")
    monkeypatch.delenv("TASKER_SUPERVISOR_PASSWORD", raising=False)
    conf = parse(render(load_config("development"), Path("/opt/tasker/bin")))
    assert not conf.has_option("unix_http_server", "password")
    assert conf["unix_http_server"]["chmod"] == "0700"


def test_the_config_is_replaced_whole_and_left_alone_when_unchanged(monkeypatch, tmp_path):
    from tasker.cli.supervisor import write_conf

    monkeypatch.setenv("MYSQL_PASSWD", "x")
    monkeypatch.setenv("RABBITMQ_PASSWD", "x")
    monkeypatch.setenv("TASKER_TEST_VAR", str(tmp_path / "var"))
    config = load_config("test")
    path = write_conf(config, Path("/opt/tasker/bin"))
    inode = path.stat().st_ino
    assert write_conf(config, Path("/opt/tasker/bin")) == path and path.stat().st_ino == inode
    write_conf(config, Path("/elsewhere/bin"))
    assert path.stat().st_ino != inode, "a changed config is a new file renamed into place"
    assert "/elsewhere/bin/manager" in path.read_text() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
