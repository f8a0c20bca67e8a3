"""Configuration: the shape of `config/<mode>.config.yaml` and how it is loaded and checked."""

from tasker.config.loader import NAME_PATTERN, TASK_TYPE_PATTERN, config_dir, load_config
from tasker.config.schema import (
    PROJECT_ROOT,
    ApiConfig,
    Config,
    DbConfig,
    LoggingConfig,
    ManagerConfig,
    MessageQueueConfig,
    MetricsConfig,
    RabbitmqConfig,
    SupervisorConfig,
    TlsConfig,
    WebhookConfig,
    WebhookDeliveryConfig,
)

__all__ = [
    "NAME_PATTERN",
    "PROJECT_ROOT",
    "TASK_TYPE_PATTERN",
    "ApiConfig",
    "Config",
    "DbConfig",
    "LoggingConfig",
    "ManagerConfig",
    "MessageQueueConfig",
    "MetricsConfig",
    "RabbitmqConfig",
    "SupervisorConfig",
    "TlsConfig",
    "WebhookConfig",
    "WebhookDeliveryConfig",
    "config_dir",
    "load_config",
]
