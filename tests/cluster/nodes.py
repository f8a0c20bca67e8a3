"""The suite's hold on the RabbitMQ cluster and HAProxy that scripts/cluster runs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess

import pika

from tests.helpers import ROOT

log = logging.getLogger(__name__)

SCRIPT = ROOT / "scripts" / "cluster"
NODES = (1, 2, 3)
HAPROXY_PORT = 19200
API_PORTS = (19191, 19192)


def amqp_port(node: int) -> int:
    """The AMQP port of node 1, 2 or 3."""
    return 5680 + node


def hosts(first: int = 1) -> str:
    """The `hosts` failover list of every node, starting with node `first`."""
    order = NODES[first - 1 :] + NODES[: first - 1]
    return ",".join("127.0.0.1:%d" % amqp_port(node) for node in order)


class RabbitCluster:
    """Starts, stops, kills and pauses the nodes of scripts/cluster, and asks them about queues."""

    def __init__(self, vhost: str) -> None:
        self.vhost = vhost

    def script(self, *args: str, timeout: float = 300) -> str:
        """Run scripts/cluster with `args`; its standard output, or a failure with what it said."""
        done = subprocess.run([str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, "scripts/cluster %s: %s%s" % (" ".join(args), done.stdout, done.stderr)
        return done.stdout

    def start(self) -> None:
        """Start every node and HAProxy (what runs already is left as it is)."""
        self.script("start")

    def stop(self) -> None:
        """Stop every node and HAProxy."""
        self.script("stop")

    def pid(self, node: int) -> int | None:
        """The pid of the node's Erlang VM, or None when it is not running."""
        text = self.script("pid", str(node)).strip()
        return int(text) if text else None

    def kill(self, node: int) -> None:
        """SIGKILL the node's Erlang VM: it goes away without a word to its peers."""
        pid = self.pid(node)
        assert pid is not None, "node %d is not running" % node
        os.kill(pid, signal.SIGKILL)

    def pause(self, node: int) -> None:
        """SIGSTOP the node: its peers stop hearing from it, as in a network partition."""
        os.kill(self._pid(node), signal.SIGSTOP)

    def resume(self, node: int) -> None:
        """SIGCONT a paused node."""
        os.kill(self._pid(node), signal.SIGCONT)

    def start_node(self, node: int) -> None:
        """Start one node again and wait until it runs."""
        self.script("start-node", str(node))

    def running(self) -> set[int]:
        """The nodes a running, unpaused node counts as running in the cluster."""
        done = subprocess.run([str(SCRIPT), "running"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        names = done.stdout.split() if done.returncode == 0 else []  # a node restarting answers nothing
        return {int(name.split("@")[0].removeprefix("tasker-c")) for name in names}

    def leaders(self) -> dict[str, int]:
        """Which node leads each quorum queue of the vhost."""
        found = {}
        for line in self.script("leaders", self.vhost).splitlines():
            queue, leader = line.split()
            found[queue] = int(leader.split("@")[0].removeprefix("tasker-c"))
        return found

    def busiest_leader(self, queues: list[str]) -> int:
        """The node that leads most of `queues`."""
        leaders = self.leaders()
        counts = {node: sum(1 for queue in queues if leaders.get(queue) == node) for node in NODES}
        log.info("queue leaders: %s", {queue: leaders.get(queue) for queue in queues})
        return max(counts, key=counts.get)

    def consumers(self, queue: str) -> int:
        """How many consumers the cluster counts on a queue (0 when it does not exist)."""
        for node in NODES:
            parameters = pika.ConnectionParameters(
                "127.0.0.1", amqp_port(node), self.vhost, pika.PlainCredentials("guest", "guest"), socket_timeout=3
            )
            try:
                connection = pika.BlockingConnection(parameters)
            except pika.exceptions.AMQPConnectionError:
                continue
            try:
                return connection.channel().queue_declare(queue, passive=True).method.consumer_count
            except pika.exceptions.ChannelClosedByBroker:
                return 0
            finally:
                if connection.is_open:
                    connection.close()
        raise AssertionError("no node of the cluster answers")

    def _pid(self, node: int) -> int:
        pid = self.pid(node)
        assert pid is not None, "node %d is not running" % node
        return pid
