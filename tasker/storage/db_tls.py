"""TLS for MySQL and MariaDB connections, from `manager.db.tls`."""

from __future__ import annotations

import ssl
from typing import Any

from tasker.config import TlsConfig
from tasker.errors import ConfigError


class _ServerNameContext(ssl.SSLContext):
    """A client TLS context that checks the server's certificate against `server_name` when set,
    rather than against the host connected to (the name PyMySQL passes)."""

    server_name = ""

    def wrap_socket(self, sock, *args: Any, server_hostname: str | None = None, **kwargs: Any) -> ssl.SSLSocket:
        """Wrap `sock`, naming the server `server_name` if one is set."""
        return super().wrap_socket(sock, *args, server_hostname=self.server_name or server_hostname, **kwargs)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """The TLS context of database connections from `manager.db.tls`.

    The server's certificate is verified against `ca_file` (the system's CAs without one) and its
    name against the host, or `server_hostname`, unless `verify` is false; `cert_file` and
    `key_file` are the client certificate the server may ask for.
    """
    if tls.key_file and not tls.cert_file:
        raise ConfigError("manager.db.tls: key_file needs cert_file")
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = tls.server_hostname
    files = " / ".join(name for name in (tls.ca_file, tls.cert_file, tls.key_file) if name)
    try:
        if tls.ca_file:
            context.load_verify_locations(tls.ca_file)
        else:
            context.load_default_certs()
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("manager.db.tls: cannot load %s: %s" % (files, exc)) from exc
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
