"""pika connection parameters built from `manager.message_queue`."""

from __future__ import annotations

import pika

from tasker.config import MessageQueueConfig


def connection_parameters(settings: MessageQueueConfig, attempts: int | None = None) -> pika.ConnectionParameters:
    """Parameters for one connection attempt cycle to the configured broker."""
    return pika.ConnectionParameters(
        host=settings.host,
        port=settings.port,
        virtual_host=settings.virtual_host,
        credentials=pika.PlainCredentials(settings.username, settings.password),
        heartbeat=settings.heartbeat,
        connection_attempts=attempts or settings.connection_attempts,
        retry_delay=settings.retry_delay,
        socket_timeout=5,
        blocked_connection_timeout=60,
        client_properties={"connection_name": "tasker"},
    )
