"""The configuration: environment variables, validation with errors that name the key."""

from __future__ import annotations

import pytest

from tasker.config import load_config
from tasker.errors import ConfigError

BASE = """
task_types: [worker]
manager:
  db:
    uri: "sqlite://"
"""


def write(tmp_path, text: str):
    (tmp_path / "x.config.yaml").write_text(text)
    return tmp_path


def test_the_shipped_configurations_load(monkeypatch):
    monkeypatch.setenv("MYSQL_PASSWD", "secret")
    monkeypatch.setenv("RABBITMQ_PASSWD", "secret")
    monkeypatch.delenv("MYSQL_HOST", raising=False)
    development = load_config("development")
    assert development.task_types == ("worker", "backup")
    assert development.endpoints == {"worker": ["console1", "console2"], "backup": ["console1", "console2"]}
    assert development.api.port == 8888 and development.api.wait_for_endpoints_timeout == 30
    assert development.manager.db.uri == "mysql+pymysql://tasker:secret@127.0.0.1:3306/tasker"
    assert development.manager.message_queue.virtual_host == "tasker"
    assert development.api.address == "127.0.0.1" and development.api.auth == "none"
    monkeypatch.setenv("TASKER_ENDPOINT", "host1")
    monkeypatch.setenv("TASKER_API_TOKENS", "t1, t2")
    monkeypatch.setenv("MYSQL_HOST", "db")
    monkeypatch.setenv("RABBITMQ_HOST", "mq")
    production = load_config("production")
    assert production.endpoints["worker"] == ["host1"] and production.api.tokens == ["t1", "t2"]
    assert "failing" in load_config("test").task_types


@pytest.mark.parametrize("tokens", [None, "", "   ", " , "])
def test_production_refuses_to_start_without_a_token(monkeypatch, tokens):
    for name, value in (
        ("MYSQL_PASSWD", "x"),
        ("RABBITMQ_PASSWD", "x"),
        ("TASKER_ENDPOINT", "h"),
        ("MYSQL_HOST", "db"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RABBITMQ_HOST", "mq")
    monkeypatch.setenv("TASKER_ENV_FILE", "/nonexistent")
    if tokens is None:
        monkeypatch.delenv("TASKER_API_TOKENS", raising=False)
    else:
        monkeypatch.setenv("TASKER_API_TOKENS", tokens)
    production = load_config("production")  # managers and initialize read it without tokens
    with pytest.raises(ConfigError, match="api.auth is tokens but api.tokens is empty"):
        production.api.check_auth()


def test_serving_without_authentication_must_be_said(tmp_path):
    with pytest.raises(ConfigError, match="api.auth is tokens but api.tokens is empty"):
        load_config("x", write(tmp_path, BASE)).api.check_auth()
    with pytest.raises(ConfigError, match="must not be empty or blank"):
        load_config("x", write(tmp_path, BASE + "api:\n  tokens: ['a', '  ']\n"))
    with pytest.raises(ConfigError, match="api.auth is none but api.tokens are given"):
        load_config("x", write(tmp_path, BASE + "api:\n  auth: none\n  tokens: [a]\n"))
    assert load_config("x", write(tmp_path, BASE + "api:\n  auth: none\n")).api.tokens == []


def test_environment_variables_fill_values_and_keep_their_type(tmp_path, monkeypatch):
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("PASS", "s3cret")
    text = (
        BASE + 'api:\n  port: "{PORT}"\n  address: "{ADDR:-10.0.0.1}"\n'
        '  max_body_size: 10\nrabbitmq:\n  password: "x{PASS}y"\n'
    )
    config = load_config("x", write(tmp_path, text))
    assert config.api.port == 9999
    assert config.api.address == "10.0.0.1"
    assert config.rabbitmq.password == "xs3crety"


@pytest.mark.parametrize("secret", ["*starts-like-an-alias", "@at", "%percent", "&anchor", "!tag", "0x1F", "yes", ""])
def test_a_secret_from_the_environment_is_taken_as_it_is_never_parsed(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("PASS", secret)
    monkeypatch.setenv("FLAG", "false")
    text = BASE + 'rabbitmq:\n  password: "{PASS}"\napi:\n  tls:\n    enabled: "{FLAG}"\n'
    config = load_config("x", write(tmp_path, text))
    assert config.rabbitmq.password == secret and config.api.tls.enabled is False


def test_a_value_put_into_a_url_is_percent_encoded(tmp_path, monkeypatch):
    monkeypatch.setenv("PASS", "p@ss/w:rd%")
    text = BASE.replace('"sqlite://"', '"mysql+pymysql://tasker:{PASS}@db:3306/tasker"')
    config = load_config("x", write(tmp_path, text))
    assert config.manager.db.uri == "mysql+pymysql://tasker:p%40ss%2Fw%3Ard%25@db:3306/tasker"
    monkeypatch.setenv("WHOLE", "mysql+pymysql://u:p@h/db")
    text = BASE.replace('"sqlite://"', '"{WHOLE:-sqlite://}"')
    assert load_config("x", write(tmp_path, text)).manager.db.uri == "mysql+pymysql://u:p@h/db"


def test_a_missing_environment_variable_names_the_key_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    monkeypatch.setenv("TASKER_ENV_FILE", str(tmp_path / "none.env"))
    text = BASE.replace('"sqlite://"', '"mysql+pymysql://u:{NOT_SET_ANYWHERE}@h/db"')
    with pytest.raises(ConfigError, match=r"manager\.db\.uri: environment variable NOT_SET_ANYWHERE is not set"):
        load_config("x", write(tmp_path, text))


def test_the_env_file_supplies_variables_the_environment_lacks(tmp_path, monkeypatch):
    env_file = tmp_path / "tasker.env"
    env_file.write_text("# generated\nFROM_FILE=abc\n")
    monkeypatch.setenv("TASKER_ENV_FILE", str(env_file))
    monkeypatch.delenv("FROM_FILE", raising=False)
    text = BASE.replace('"sqlite://"', '"sqlite:///{FROM_FILE}.db"')
    assert load_config("x", write(tmp_path, text)).manager.db.uri == "sqlite:///abc.db"


@pytest.mark.parametrize(
    "extra, message",
    [
        ("api:\n  prot: 1\n", "unknown configuration key api.prot"),
        ("api:\n  port: eighty\n", "api.port must be int, not the text 'eighty'"),
        ("api:\n  port: [1]\n", "api.port must be int, not list"),
        ("api:\n  port: true\n", "api.port must be int, not bool"),
        ("colour: blue\n", "unknown configuration key colour"),
        ("endpoints:\n  backup: [a]\n", "endpoints.backup: 'backup' is not in task_types"),
        ("endpoints:\n  worker: ['a b']\n", "not a valid endpoint name"),
        ("api:\n  wait_for_endpoints_timeout: 0\n", "wait_for_endpoints_timeout must be above 0"),
    ],
)
def test_wrong_keys_and_types_are_startup_errors_that_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config("x", write(tmp_path, BASE + extra))


def test_task_types_must_be_module_names(tmp_path):
    with pytest.raises(ConfigError, match="not a valid task type"):
        load_config("x", write(tmp_path, BASE.replace("[worker]", "['../etc']")))


def test_a_missing_required_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match="missing configuration key manager.db"):
        load_config("x", write(tmp_path, "task_types: [worker]\nmanager: {}\n"))


def test_an_unknown_run_mode_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no configuration for run mode 'nope'"):
        load_config("nope", tmp_path)


def test_the_handler_module_comes_from_the_configuration_only(tmp_path):
    text = (
        "task_types: [worker]\nmanager:\n  db: {uri: 'sqlite://'}\n"
        "  handler_modules: {worker: myteam.handlers.worker}\n"
    )
    config = load_config("x", write(tmp_path, text))
    assert config.handler_module("worker") == "myteam.handlers.worker"
    with pytest.raises(ConfigError, match="'os' is not configured"):
        config.handler_module("os")


def test_a_database_uri_that_is_not_a_url_is_a_configuration_error():
    from tasker.config import DbConfig
    from tasker.storage import open_database

    with pytest.raises(ConfigError, match="manager.db.uri is not a database URL"):
        open_database(DbConfig(uri="not a url at all"))
