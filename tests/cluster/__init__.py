"""The cluster suite: tasker on three RabbitMQ nodes and two APIs behind HAProxy (`make test-cluster`)."""
