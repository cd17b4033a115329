"""A three-node Apache Kafka cluster for tests: three combined KRaft controller+broker nodes,
a quorum of three, on free 127.0.0.1 ports (the jars and node of deploy/local/kafka_broker.py).

    cluster = start_cluster(tmp_path / "kafka")     # returns once every node is a live broker
    cluster.bootstrap                               # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
    cluster.kill(2)                                 # SIGKILL node 2 (an unclean crash)
    cluster.restart(2)                              # start it again on its kept log; wait until live
    cluster.stop()                                  # SIGTERM every node

Failure detection is shortened for tests (a dead broker is fenced, and leaves the in-sync
replicas, after ~3 s instead of Kafka's 9-30 s defaults), so a kill's effect fits in a
test of a minute; nothing else differs from a production cluster's behaviour.
"""
from __future__ import annotations

import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.kafka_broker import KafkaBroker, fetch_jars, new_cluster_id
from pulse import procs
from pulse.procs import free_port

# Fast failover: heartbeats every 0.5 s, a broker fenced (its partitions' leaders moved, its
# replicas out of the ISR) after 3 s of silence; a follower that stops fetching leaves the
# ISR after 5 s. Three JVMs share two cores with everything else: 384 MiB heap each.
FAST_FAILOVER = (
    "broker.heartbeat.interval.ms=500",
    "broker.session.timeout.ms=3000",
    "replica.lag.time.max.ms=5000",
    "controller.quorum.fetch.timeout.ms=3000",
    "controller.quorum.election.timeout.ms=1000",
)


@dataclass
class KafkaCluster:
    nodes: dict[int, KafkaBroker]
    killed: set[int] = field(default_factory=set)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes.values())

    def node(self, node_id: int) -> KafkaBroker:
        return self.nodes[node_id]

    def live(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.pid()]

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL: no flush, no controlled shutdown) to one node and
        wait until its process is gone."""
        node = self.nodes[node_id]
        procs.terminate(node.pid(), timeout=30, sig=sig)
        self.killed.add(node_id)

    def restart(self, node_id: int, timeout: float = 90.0) -> None:
        """Start a killed (or stopped) node again on its kept data; wait until it answers."""
        node = self.nodes[node_id]
        proc = node.launch()
        if proc is not None:
            node.wait_healthy(proc, timeout)
        self.killed.discard(node_id)

    def wait_brokers(self, n: int, timeout: float = 60.0) -> None:
        """Until the cluster's metadata lists ``n`` unfenced brokers."""
        from kafka import KafkaAdminClient

        from pulse.admin import live_brokers
        deadline = time.monotonic() + timeout
        seen: list[int] = []
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                try:
                    seen = live_brokers(admin)
                finally:
                    admin.close()
                if len(seen) == n:
                    return
            except Exception:  # noqa: BLE001 - a node coming up
                pass
            time.sleep(0.3)
        raise TimeoutError(f"cluster did not reach {n} live brokers in {timeout:.0f} s (saw {seen})")

    def stop(self) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda n: n.stop(timeout=30), self.nodes.values()))

    def logs(self, lines: int = 30) -> str:
        out = []
        for i, n in self.nodes.items():
            if n.log_file.exists():
                tail = n.log_file.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- node {i}: {n.log_file} ---\n" + "\n".join(tail))
        return "\n".join(out)


def start_cluster(home: Path | None = None, size: int = 3, heap: str = "384m",
                  timeout: float = 120.0) -> KafkaCluster:
    home = home or Path(tempfile.mkdtemp(prefix="pulse-kafka-cluster-"))
    libs = fetch_jars()
    ports = {i: (free_port(), free_port()) for i in range(1, size + 1)}
    voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in ports.items())
    cid = new_cluster_id()
    nodes = {i: KafkaBroker(home / f"node{i}", p, c, libs=libs, heap=heap, node_id=i, quorum_voters=voters,
                            cluster_id=cid, internal_replication=size, extra_properties=FAST_FAILOVER)
             for i, (p, c) in ports.items()}
    cluster = KafkaCluster(nodes)
    try:
        # formatting is a JVM start each: in parallel; then every node at once (none is
        # healthy before a majority of the quorum runs)
        with ThreadPoolExecutor(size) as pool:
            list(pool.map(lambda n: n.prepare(), nodes.values()))
        started = {i: n.launch() for i, n in nodes.items()}
        for i, n in nodes.items():
            n.wait_healthy(started[i], timeout)
        cluster.wait_brokers(size, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster
