"""The supervisor configuration rendered from a run mode's config."""

from __future__ import annotations

import configparser
import dataclasses
import os
import pwd
import signal
import subprocess
from pathlib import Path

import pytest

from tasker.cli.supervisor import render, write_conf
from tasker.config import Config, load_config
from tasker.errors import ConfigError
from tests.helpers import BIN, wait_for


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


def development(monkeypatch, **supervisor) -> Config:
    """The development config, its supervisor section changed by `supervisor`."""
    monkeypatch.setenv("MYSQL_PASSWD", "x")
    monkeypatch.setenv("RABBITMQ_PASSWD", "x")
    monkeypatch.setenv("TASKER_SUPERVISOR_PASSWORD", "p")
    config = load_config("development")
    return dataclasses.replace(config, supervisor=dataclasses.replace(config.supervisor, **supervisor))


def in_folder(config: Config, folder: Path) -> Config:
    """`config` with its supervisor log and run folders under `folder`."""
    settings = dataclasses.replace(config.supervisor, log_dir=str(folder / "log"), run_dir=str(folder / "run"))
    return dataclasses.replace(config, supervisor=settings)


def programs(conf: configparser.RawConfigParser) -> list[configparser.SectionProxy]:
    return [conf[name] for name in conf.sections() if name.startswith("program:")]


def test_every_program_runs_as_supervisor_user_with_its_login_variables(monkeypatch):
    me = pwd.getpwuid(os.getuid())
    conf = parse(render(development(monkeypatch, user=me.pw_name), Path("/opt/tasker/bin")))
    assert len(programs(conf)) == 5
    for program in programs(conf):
        assert program["user"] == me.pw_name
        assert program["environment"] == 'HOME="%s",USER="%s",LOGNAME="%s"' % (me.pw_dir, me.pw_name, me.pw_name)


def test_without_supervisor_user_the_programs_run_as_the_invoking_user(monkeypatch):
    config = development(monkeypatch)
    assert config.supervisor.user == ""
    conf = parse(render(config, Path("/opt/tasker/bin")))
    assert not any(program.get("user") for program in programs(conf))


def test_a_supervisor_user_that_does_not_exist_here_is_refused_in_one_line(monkeypatch):
    with pytest.raises(ConfigError) as refused:
        render(development(monkeypatch, user="tasker-nobody-has"), Path("/opt/tasker/bin"))
    assert "supervisor.user: there is no user 'tasker-nobody-has' on this machine" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_production_config_runs_the_programs_as_tasker_or_TASKER_USER(monkeypatch):
    for name in ("MYSQL_PASSWD", "RABBITMQ_PASSWD", "TASKER_ENDPOINT", "MYSQL_HOST", "RABBITMQ_HOST"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("TASKER_ENV_FILE", "/nonexistent")
    monkeypatch.delenv("TASKER_USER", raising=False)
    assert load_config("production").supervisor.user == "tasker"
    monkeypatch.setenv("TASKER_USER", "")
    assert load_config("production").supervisor.user == ""
    assert load_config("development").supervisor.user == load_config("test").supervisor.user == ""


def test_an_http_port_without_a_password_is_refused(monkeypatch):
    with pytest.raises(ConfigError, match="^supervisor.http_port is 9001 but supervisor.password is empty"):
        render(development(monkeypatch, http_port=9001, password=""), Path("/opt/tasker/bin"))
    conf = parse(render(development(monkeypatch, http_port=9001), Path("/opt/tasker/bin")))
    assert conf["inet_http_server"]["port"] == "127.0.0.1:9001"
    assert conf["inet_http_server"]["password"] == "p"


def test_supervisord_creates_its_files_closed_to_others(monkeypatch):
    conf = parse(render(development(monkeypatch), Path("/opt/tasker/bin")))
    assert conf["supervisord"]["umask"] == "027"


def test_the_log_folder_and_log_files_left_readable_are_closed_to_others(monkeypatch, tmp_path):
    config = in_folder(development(monkeypatch), tmp_path)
    (tmp_path / "log").mkdir(mode=0o755)
    old_log = tmp_path / "log" / "api.log"
    old_log.write_text("from before\n")
    old_log.chmod(0o666)
    write_conf(config, Path("/opt/tasker/bin"))
    assert mode_of(tmp_path / "log") == 0o750
    assert mode_of(tmp_path / "run") == 0o750
    assert mode_of(old_log) == 0o640


def test_as_root_the_logs_and_env_file_take_the_group_of_supervisor_user(monkeypatch, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("changing a file's group to another user's needs root")
    nobody = pwd.getpwnam("nobody")
    env_file = tmp_path / "tasker.env"
    env_file.write_text("MYSQL_PASSWD=x\n")
    env_file.chmod(0o600)
    monkeypatch.setenv("TASKER_ENV_FILE", str(env_file))
    config = in_folder(development(monkeypatch, user="nobody"), tmp_path)
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "api.log").write_text("from before\n")
    write_conf(config, Path("/opt/tasker/bin"))
    log_dir = (tmp_path / "log").stat()
    assert (log_dir.st_uid, log_dir.st_gid) == (0, nobody.pw_gid), "root owns it: supervisord writes there"
    assert mode_of(tmp_path / "log") == 0o2750, "files created in it take the group"
    assert (tmp_path / "log" / "api.log").stat().st_gid == nobody.pw_gid
    assert (env_file.stat().st_gid, mode_of(env_file)) == (nobody.pw_gid, 0o640)
    created = tmp_path / "log" / "new.log"
    created.write_text("")
    assert created.stat().st_gid == nobody.pw_gid


def test_a_real_supervisord_writes_its_log_and_the_programs_logs_closed_to_others(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "api").write_text("#!/bin/sh\necho the api started\nexec sleep 60\n")
    (fake_bin / "api").chmod(0o755)
    (tmp_path / "solo.config.yaml").write_text(
        "task_types: [worker]\nmanager:\n  db:\n    uri: sqlite://\n"
        "supervisor:\n  log_dir: %s\n  run_dir: %s\n  stopwaitsecs: 5\n" % (tmp_path / "log", tmp_path / "run")
    )
    environ = dict(os.environ, TASKER_CONFIG_DIR=str(tmp_path), TASKER_ENV_FILE="/nonexistent")
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "--mode", "solo", "--bin-dir", str(fake_bin), "-n"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api_log = tmp_path / "log" / "api.log"
    try:
        wait_for(lambda: api_log.exists() and "the api started" in api_log.read_text(), 20, 0.05, "the api's log")
    finally:
        supervisord.send_signal(signal.SIGTERM)
        supervisord.wait(timeout=30)
    assert mode_of(tmp_path / "log") == 0o750
    assert mode_of(tmp_path / "log" / "supervisord.log") == 0o640
    assert mode_of(api_log) == 0o640


def test_supervisord_started_by_another_user_than_root_or_supervisor_user_is_refused(monkeypatch, tmp_path):
    from tasker.cli.supervisor import supervisord_main

    (tmp_path / "other.config.yaml").write_text(
        "task_types: [worker]\nmanager:\n  db:\n    uri: sqlite://\nsupervisor:\n  user: root\n"
        "  log_dir: %s\n  run_dir: %s\n" % (tmp_path / "log", tmp_path / "run")
    )
    monkeypatch.setenv("TASKER_CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr("sys.argv", ["supervisord", "--mode", "other"])
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    with pytest.raises(ConfigError, match="^supervisor.user is root: start supervisord as root"):
        supervisord_main()
    assert not (tmp_path / "run").exists()


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o7777
