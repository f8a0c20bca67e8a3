"""pika connection parameters built from `manager.message_queue`: one per broker to try."""

from __future__ import annotations

import ssl

import pika

from tasker.config import MessageQueueConfig, TlsConfig


def connection_parameters(settings: MessageQueueConfig, attempts: int | None = None) -> list[pika.ConnectionParameters]:
    """Parameters for each configured broker, in the order they are tried."""
    credentials = pika.PlainCredentials(settings.username, settings.password)
    return [
        pika.ConnectionParameters(
            host=host,
            port=port,
            virtual_host=settings.virtual_host,
            credentials=credentials,
            heartbeat=settings.heartbeat,
            connection_attempts=attempts or settings.connection_attempts,
            retry_delay=settings.retry_delay,
            socket_timeout=5,
            blocked_connection_timeout=60,
            ssl_options=_ssl_options(settings.tls, host) if settings.tls.enabled else None,
            client_properties={"connection_name": "tasker"},
        )
        for host, port in settings.addresses()
    ]


def _ssl_options(tls: TlsConfig, host: str) -> pika.SSLOptions:
    context = ssl.create_default_context(cafile=tls.ca_file or None)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file or None)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return pika.SSLOptions(context, server_hostname=tls.server_hostname or host)
