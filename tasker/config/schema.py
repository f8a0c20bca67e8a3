"""The configuration's shape: one frozen dataclass per section, with defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tasker.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class TlsConfig:
    """TLS files: a certificate and key to present, a CA bundle to verify the peer with."""

    enabled: bool = False
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    verify: bool = True
    server_hostname: str = ""


@dataclasses.dataclass(frozen=True)
class DbConfig:
    """Where task and task-response rows live."""

    uri: str
    verbose: bool = False
    pool_size: int = 5
    # Seconds a statement's answer (or the sending of it) may take before the database counts
    # as unavailable: a frozen server gives 503s and retries, not threads waiting forever.
    timeout: float = 5.0
    # TLS to the database server: `ca_file` verifies it, `cert_file`/`key_file` identify us.
    tls: TlsConfig = TlsConfig()


@dataclasses.dataclass(frozen=True)
class MessageQueueConfig:
    """How API and managers reach RabbitMQ, and how exchanges and queues are named."""

    host: str = "127.0.0.1"
    port: int = 5672
    # Brokers to fail over between, as "host" or "host:port"; when set, host and port are unused.
    hosts: list[str] = dataclasses.field(default_factory=list)
    # The broker user this process logs in as: with users per role (`rabbitmq.api_user`,
    # `rabbitmq.endpoint_users`), the API's on the API's host, its endpoint's on an endpoint host.
    username: str = "guest"
    password: str = "guest"
    virtual_host: str = "/"
    exchange: str = "tasker"
    queue_type: str = "classic"
    heartbeat: int = 60
    prefetch: int = 100
    # The broker's consumer_timeout in seconds: a manager renews a running task's delivery
    # well before it, so a task running for hours is neither cancelled nor redelivered.
    consumer_timeout: float = 1800.0
    # An endpoint queue that no consumer used for this long is deleted (a policy of `initialize -r`).
    queue_expires: float = 7 * 24 * 3600.0
    connection_attempts: int = 3
    retry_delay: float = 2.0
    tls: TlsConfig = TlsConfig()

    def addresses(self) -> list[tuple[str, int]]:
        """The brokers to try, in order."""
        if not self.hosts:
            return [(self.host, self.port)]
        default_port = 5671 if self.tls.enabled else 5672
        found = []
        for entry in self.hosts:
            host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
            found.append((host, int(port) if port else default_port))
        return found


@dataclasses.dataclass(frozen=True)
class ApiConfig:
    """The REST API process."""

    port: int = 8888
    address: str = "127.0.0.1"
    # `tokens`: every request but /health and /openapi.json must carry one of `tokens` (at least
    # one is required); `none`: no authentication, said explicitly.
    auth: str = "tokens"
    tokens: list[str] = dataclasses.field(default_factory=list)

    def check_auth(self) -> None:
        """Refuse to serve the API with `auth: tokens` and no token (checked when the API
        starts: managers and other tools read the same file without serving it)."""
        if self.auth == "tokens" and not self.tokens:
            raise ConfigError(
                "api.auth is tokens but api.tokens is empty: give at least one token (TASKER_API_TOKENS in "
                "production), or say api.auth: none to serve without authentication"
            )

    tls: TlsConfig = TlsConfig()
    wait_for_endpoints_timeout: int = 30
    max_body_size: int = 1024 * 1024
    max_endpoints: int = 1000
    max_payload_depth: int = 64
    # The longest `timeout` a task may ask for, in seconds.
    max_timeout: float = 86400.0
    deadline_check_interval: float = 1.0
    outbox_interval: float = 2.0
    executor_threads: int = 8
    # Worker processes that parse large POST bodies off the IOLoop (0: parse every body on it).
    parse_processes: int = 2
    # Seconds the IOLoop may be held by one callback before the API logs a warning.
    loop_stall_warning: float = 0.1
    # Bytes of task rows one batched INSERT may carry: below the database's max_allowed_packet.
    max_batch_bytes: int = 4 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ManagerConfig:
    """The manager processes on the endpoints."""

    db: DbConfig
    message_queue: MessageQueueConfig = MessageQueueConfig()
    handler_package: str = "tasker.manager.handler"
    handler_modules: dict[str, str] = dataclasses.field(default_factory=dict)
    handler_settings: dict[str, dict] = dataclasses.field(default_factory=dict)
    db_retry_delay: float = 2.0
    # Seconds a run of a type may take before its handler process is stopped (none: no limit).
    execution_timeout: dict[str, float] = dataclasses.field(default_factory=dict)
    # Seconds between SIGTERM and SIGKILL to a handler's process group (time limit, cancel).
    cancel_grace: float = 10.0
    # Bytes of a handler's JSON result payload; a larger one is a failed run.
    max_result: int = 4 * 1024 * 1024
    # Bytes of a run's output (stdout, stderr, logging) kept in full; beyond, its head and tail.
    max_output: int = 16 * 1024 * 1024
    # Seconds between the manager's checks for runs whose message expired in the queue.
    orphan_check_interval: float = 30.0
    # Deliveries of one run that may end with its manager gone before the run is recorded failed.
    max_crashes: int = 3


@dataclasses.dataclass(frozen=True)
class RabbitmqUserConfig:
    """A broker user `initialize -r` creates; one without a username is not configured."""

    username: str = ""
    password: str = ""


@dataclasses.dataclass(frozen=True)
class RabbitmqConfig:
    """What `initialize -r` needs to create the vhost, users and permissions.

    Without `api_user` and `endpoint_users`, one user (`manager.message_queue.username`) gets
    every right on the vhost. With them, each gets only what its role needs
    (`tasker.messaging.rights`) and no other user is created.
    """

    rabbitmqctl: str = "rabbitmqctl"
    # The management HTTP API, used with the admin `username` and `password` instead of rabbitmqctl.
    management_url: str = ""
    username: str = "guest"
    password: str = "guest"
    # The API's user: declares the tasks exchange, keeps endpoint queues bound, publishes tasks.
    api_user: RabbitmqUserConfig = RabbitmqUserConfig()
    # Endpoint name -> the user its managers log in as: it consumes only that endpoint's queues.
    endpoint_users: dict[str, RabbitmqUserConfig] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SupervisorConfig:
    """The supervisord of this run mode."""

    stopwaitsecs: int = 120
    log_dir: str = "var/log"
    run_dir: str = "var/run"
    username: str = "tasker"
    password: str = ""
    http_port: int = 0
    # The system user supervisord runs the API and managers as (empty: the invoking user).
    user: str = ""


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration of one run mode."""

    mode: str
    task_types: tuple[str, ...]
    manager: ManagerConfig
    api: ApiConfig = ApiConfig()
    endpoints: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    rabbitmq: RabbitmqConfig = RabbitmqConfig()
    supervisor: SupervisorConfig = SupervisorConfig()

    def handler_module(self, task_type: str) -> str:
        """Return the dotted module name of the handler module for a configured task type."""
        if task_type not in self.task_types:
            raise ConfigError(
                "task type %r is not configured (task_types: %s)" % (task_type, ", ".join(self.task_types))
            )
        default = "%s.%s" % (self.manager.handler_package, task_type)
        return self.manager.handler_modules.get(task_type, default)

    def path(self, relative: str) -> Path:
        """Resolve a path of the config against the project root."""
        path = Path(relative)
        return path if path.is_absolute() else PROJECT_ROOT / path
