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
class MetricsConfig:
    """`GET /metrics`: who may read it, how often it reads the database, what "recent" means."""

    # `tokens`: a token of api.tokens or of `tokens` below (none needed when neither has one);
    # `none`: open without a token (a scrape from a private network).
    auth: str = "tokens"
    # Tokens good for /metrics only: Prometheus' bearer token then cannot create tasks.
    tokens: list[str] = dataclasses.field(default_factory=list)
    # Seconds one reading of the fleet's figures is served again: scrapes cannot load the database.
    cache_seconds: float = 2.0
    # Seconds back that "finished" figures count (tasks settled, runs finished, run durations).
    window: float = 60.0


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    """A receiver of events (`api.webhooks`): each event it wants is POSTed to `url`, signed
    with `secret`."""

    url: str
    # Who holds the secret can forge deliveries: from the environment, like other secrets.
    secret: str = dataclasses.field(default="", repr=False)
    # Task types whose events it gets (empty: all); kinds of event: `task`, `response`.
    types: list[str] = dataclasses.field(default_factory=list)
    events: list[str] = dataclasses.field(default_factory=lambda: ["task", "response"])


@dataclasses.dataclass(frozen=True)
class WebhookDeliveryConfig:
    """How the API delivers to `api.webhooks`: retries, pace, and how long rows are kept."""

    # Seconds before the first retry of a failed delivery, doubling up to `max_retry_delay`;
    # a delivery not answered with a 2xx within `give_up_after` seconds is given up.
    first_retry: float = 10.0
    max_retry_delay: float = 900.0
    give_up_after: float = 86400.0
    # Seconds between looks for new events and due deliveries when there is nothing to send.
    interval: float = 1.0
    # POSTs one API process has under way at once.
    concurrency: int = 10
    # Seconds a delivered or given-up delivery row is kept.
    retention: float = 86400.0


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
    # Days after which a settled task (created and last changed that long ago) is deleted with
    # its responses, runs and output (0: tasks are kept for ever).
    retention_days: int = 90
    # Requests waiting for a task to settle (`GET /<type>/<id>?wait=S`) one API process keeps
    # open at once, and event streams (`GET /events`) it serves at once: 503 beyond.
    max_waiters: int = 1000
    max_event_streams: int = 100
    # Seconds events are kept for `GET /events` clients that come back with Last-Event-ID (0: for ever).
    event_retention: float = 86400.0
    metrics: MetricsConfig = MetricsConfig()
    # Receivers of events, each called only at its configured URL (tasker.webhooks).
    webhooks: list[WebhookConfig] = dataclasses.field(default_factory=list)
    webhook_delivery: WebhookDeliveryConfig = WebhookDeliveryConfig()


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
    # Seconds between a manager's heartbeats (its registration's last_seen, what it runs, its
    # queue's depth); one not seen for 3 of them is not alive (GET /endpoints, max_concurrency).
    heartbeat_interval: float = 10.0


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
class LoggingConfig:
    """How bin/api and bin/manager log (to stderr, which supervisord keeps)."""

    # `text`: one readable line a record; `json`: one JSON object a line (tasker.cli.log_format).
    format: str = "text"


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
    logging: LoggingConfig = LoggingConfig()

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
