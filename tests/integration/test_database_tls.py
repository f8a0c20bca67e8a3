"""`manager.db.tls`: database connections over TLS, against a throwaway MariaDB that requires it.

The module starts its own mariadbd in a temporary folder, on a free port, with certificates
made here by openssl and `require_secure_transport`: the shared MariaDB on 3306 is not touched.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pymysql
import pytest
from sqlalchemy import inspect, text

from tasker.config import DbConfig, TlsConfig
from tasker.errors import ConfigError, StorageUnavailable
from tasker.storage import open_database
from tests.helpers import BIN, ROOT, wait_for

pytestmark = pytest.mark.integration

MARIADBD = os.environ.get("TASKER_MARIADBD", "/usr/sbin/mariadbd")
# Users of the throwaway server: `tls` needs TLS (as every connection does), `x509` a client
# certificate signed by the CA too.
USERS_SQL = """
CREATE USER 'tls'@'%';
GRANT ALL ON *.* TO 'tls'@'%';
CREATE USER 'x509'@'%' REQUIRE X509;
GRANT ALL ON *.* TO 'x509'@'%';
"""
SERVER_EXTENSIONS = """basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""
CLIENT_EXTENSIONS = """basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class TlsServer:
    """The running throwaway server and the files to reach it with."""

    port: int
    folder: Path

    def file(self, name: str) -> str:
        """The path of one of the server's files (ca.pem, client.pem, other-ca.pem, ...)."""
        return str(self.folder / name)

    def config(self, user: str = "tls", database: str = "", **tls: object) -> DbConfig:
        """`manager.db` for this server as `user`, with `tls` (enabled, unless said)."""
        uri = "mysql+pymysql://%s@127.0.0.1:%d/%s" % (user, self.port, database)
        return DbConfig(uri=uri, tls=TlsConfig(**dict({"enabled": True}, **tls)))


def require_tools() -> None:
    """Skip locally when MariaDB's programs or openssl are missing; under CI, fail."""
    missing = [name for name in ("mariadb-install-db", "openssl") if not shutil.which(name)]
    missing += [] if os.access(MARIADBD, os.X_OK) else [MARIADBD]
    if not missing:
        return
    message = "a throwaway TLS MariaDB needs %s" % ", ".join(missing)
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def openssl(folder: Path, *args: str) -> None:
    """Run one openssl command in `folder`."""
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=30)


def make_ca(folder: Path, name: str) -> None:
    """A self-signed CA: `<name>.pem` and `<name>.key`."""
    openssl(
        folder,
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tasker test " + name),
        *("-keyout", name + ".key", "-out", name + ".pem"),
        *("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )


def make_certificate(folder: Path, name: str, common_name: str, extensions: str) -> None:
    """`<name>.pem` and `<name>.key`, signed by the CA `ca`."""
    (folder / (name + ".ext")).write_text(extensions)
    openssl(
        folder,
        *("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + common_name),
        *("-keyout", name + ".key", "-out", name + ".csr"),
    )
    openssl(
        folder,
        *("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"),
        *("-days", "2", "-extfile", name + ".ext", "-out", name + ".pem"),
    )


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def as_root_too() -> list[str]:
    """MariaDB's programs refuse to run as root unless told to."""
    return ["--user=root"] if os.geteuid() == 0 else []


def start_mariadbd(folder: Path, port: int) -> subprocess.Popen:
    """mariadbd on `port` with the folder's certificates, refusing connections without TLS."""
    (folder / "users.sql").write_text(USERS_SQL)
    return subprocess.Popen(
        [
            MARIADBD,
            "--no-defaults",
            *as_root_too(),
            "--datadir=%s" % (folder / "data"),
            "--port=%d" % port,
            "--bind-address=127.0.0.1",
            "--socket=%s" % (folder / "mariadb.sock"),
            "--pid-file=%s" % (folder / "mariadb.pid"),
            "--log-error=%s" % (folder / "error.log"),
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=16M",
            "--ssl-ca=%s" % (folder / "ca.pem"),
            "--ssl-cert=%s" % (folder / "server.pem"),
            "--ssl-key=%s" % (folder / "server.key"),
            "--require-secure-transport=ON",
            "--init-file=%s" % (folder / "users.sql"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen) -> None:
    """Stop the server: SIGTERM, SIGKILL if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[TlsServer]:
    """A throwaway MariaDB that requires TLS, stopped when the module ends."""
    require_tools()
    folder = tmp_path_factory.mktemp("mariadb-tls")
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    make_certificate(folder, "server", "localhost", SERVER_EXTENSIONS)
    make_certificate(folder, "client", "tasker", CLIENT_EXTENSIONS)
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            *as_root_too(),
            "--datadir=%s" % (folder / "data"),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    process = start_mariadbd(folder, port)
    try:
        wait_for(lambda: port_open(port) or process.poll() is not None, 20, 0.05, "mariadbd on port %d" % port)
        assert process.poll() is None, (folder / "error.log").read_text()
        yield TlsServer(port, folder)
    finally:
        stop(process)


def query(config: DbConfig, statement: str) -> list[tuple]:
    """Run one statement through tasker's engine and return its rows."""
    database = open_database(config)
    try:
        with database.connection() as connection:
            return [tuple(row) for row in connection.execute(text(statement))]
    finally:
        database.close()


def test_with_tls_and_the_servers_ca_the_connection_is_encrypted(tls_server: TlsServer) -> None:
    config = tls_server.config(ca_file=tls_server.file("ca.pem"))
    assert query(config, "SELECT 1") == [(1,)]
    [(_, cipher)] = query(config, "SHOW STATUS LIKE 'Ssl_cipher'")
    assert cipher, "the session is encrypted"


def test_the_server_refuses_a_connection_without_tls(tls_server: TlsServer) -> None:
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host="127.0.0.1", port=tls_server.port, user="tls", ssl_disabled=True, connect_timeout=5)
    assert refused.value.args[0] == 1045


def test_a_server_certificate_from_another_ca_is_refused(tls_server: TlsServer) -> None:
    with pytest.raises(StorageUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        query(tls_server.config(ca_file=tls_server.file("other-ca.pem")), "SELECT 1")


def test_without_verify_an_unverifiable_server_is_still_reached_over_tls(tls_server: TlsServer) -> None:
    config = tls_server.config(ca_file=tls_server.file("other-ca.pem"), verify=False)
    [(_, cipher)] = query(config, "SHOW STATUS LIKE 'Ssl_cipher'")
    assert cipher


def test_server_hostname_is_the_name_checked_in_the_certificate(tls_server: TlsServer) -> None:
    ca_file = tls_server.file("ca.pem")
    assert query(tls_server.config(ca_file=ca_file, server_hostname="localhost"), "SELECT 1") == [(1,)]
    with pytest.raises(StorageUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        query(tls_server.config(ca_file=ca_file, server_hostname="db.example"), "SELECT 1")


def test_a_user_that_requires_a_client_certificate_gets_the_configured_one(tls_server: TlsServer) -> None:
    ca_file = tls_server.file("ca.pem")
    with_certificate = tls_server.config(
        "x509", ca_file=ca_file, cert_file=tls_server.file("client.pem"), key_file=tls_server.file("client.key")
    )
    assert query(with_certificate, "SELECT CURRENT_USER()") == [("x509@%",)]
    with pytest.raises(StorageUnavailable, match="Access denied"):
        query(tls_server.config("x509", ca_file=ca_file), "SELECT 1")


def test_initialize_creates_the_database_and_tables_over_tls(tls_server: TlsServer, tmp_path: Path) -> None:
    files = {
        "ca_file": tls_server.file("ca.pem"),
        "cert_file": tls_server.file("client.pem"),
        "key_file": tls_server.file("client.key"),
    }
    (tmp_path / "tls.config.yaml").write_text(
        "task_types: [worker]\nmanager:\n  db:\n    uri: %s\n    tls: {enabled: true, %s}\n"
        % (tls_server.config("x509", "tasker_tls").uri, ", ".join("%s: %s" % item for item in files.items()))
    )
    environ = dict(os.environ, TASKER_CONFIG_DIR=str(tmp_path), TASKER_ENV_FILE="/nonexistent")
    done = subprocess.run(
        [str(BIN / "initialize"), "--mode", "tls", "-d"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    database = open_database(tls_server.config("x509", "tasker_tls", **files))
    try:
        assert {"task", "task_response"} <= set(inspect(database.engine).get_table_names())
    finally:
        database.close()


def test_tls_files_that_cannot_be_loaded_are_a_configuration_error_naming_them(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing-ca.pem")
    tls = TlsConfig(enabled=True, ca_file=missing)
    with pytest.raises(ConfigError, match="^manager.db.tls: cannot load %s" % missing):
        open_database(DbConfig(uri="mysql+pymysql://tasker@127.0.0.1:1/tasker", tls=tls))
    with pytest.raises(ConfigError, match="manager.db.tls is for MySQL and MariaDB"):
        open_database(DbConfig(uri="sqlite://", tls=TlsConfig(enabled=True)))
