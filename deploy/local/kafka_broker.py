"""The real Apache Kafka broker, fetched from Maven Central and run as one KRaft node.

Why this shape: no Debian/PyPI package ships the broker, but Maven Central ships
``org.apache.kafka:kafka_2.13`` with its dependencies (see pom.xml beside this file).
``mvn dependency:copy-dependencies`` puts every jar in one folder and the broker runs as
``java -cp 'libs/*' kafka.Kafka server.properties`` in combined broker+controller mode.

With ``security=BrokerSecurity(...)`` the client listener is SASL_SSL (SCRAM-SHA-512 users
created at format time, TLS from a PKCS12 keystore) instead of PLAINTEXT: the shape of a
province cluster, for tests/integration/test_kafka_security.py (tests/support/secure_broker.py
makes the certificates). The local stack (`make up`) stays PLAINTEXT.

    python -m deploy.local.kafka_broker fetch|start|stop|status [--dir DIR] [--port N]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from pulse import procs

HERE = Path(__file__).resolve().parent
POM = HERE / "kafka" / "pom.xml"
LOG4J2 = HERE / "kafka" / "log4j2.yaml"


def default_libs_dir() -> Path:
    from pulse.config import Settings
    return Settings.from_env().kafka_libs_dir


def fetch_jars(libs: Path | None = None, quiet: bool = True) -> Path:
    """Download the broker's jars once (Maven keeps its own cache in ~/.m2)."""
    libs = libs or default_libs_dir()
    marker = libs / ".complete"
    if marker.exists() and marker.read_text() == POM.read_text():
        return libs
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the Kafka broker: apt-get install -y maven")
    tmp = libs.with_name(libs.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    if quiet:
        cmd.insert(1, "-q")
    subprocess.run(cmd, check=True)
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.write_text(POM.read_text())
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: a base64 UUID (made here instead of a JVM round trip)."""
    import base64
    cid = "-"
    while cid.startswith("-"):  # StorageTool would read a leading '-' as an option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cid


@dataclass
class BrokerSecurity:
    """A SASL_SSL client listener: TLS with ``keystore`` (PKCS12: the broker's key and
    certificate), SCRAM-SHA-512 logins for ``scram_users`` (name -> password).

    The broker also talks to itself over that listener (inter-broker listener, as a
    multi-node cluster would), as ``inter_broker_user`` and trusting ``truststore_pem``; a
    plaintext side door for the broker's own traffic would leave the secured broker open to
    any local client, and the tests would then prove less."""
    keystore: Path
    keystore_password: str
    truststore_pem: Path
    scram_users: dict[str, str]
    inter_broker_user: str = "admin"
    mechanism: str = "SCRAM-SHA-512"

    def __post_init__(self) -> None:
        if self.inter_broker_user not in self.scram_users:
            raise ValueError(f"inter_broker_user {self.inter_broker_user!r} needs a password in scram_users")
        for name, password in self.scram_users.items():
            # They go into a JAAS line and StorageTool's [name=...,password=...]: no quoting there.
            if not all(c.isalnum() or c in "-_." for c in name + password):
                raise ValueError(f"SCRAM user {name!r}: use letters, digits, '-', '_' or '.' only")


@dataclass
class KafkaBroker:
    """One KRaft node (broker + controller) whose data lives in ``home``."""
    home: Path
    port: int = 9092
    controller_port: int = 9093
    libs: Path | None = None
    heap: str = "768m"
    security: BrokerSecurity | None = None
    # Member of a multi-node KRaft cluster (tests/support/cluster.py): this node's id, the
    # quorum "1@127.0.0.1:p1,2@...", the cluster id every member is formatted with, and the
    # replication of the broker's own topics (consumer offsets, transactions). The defaults
    # are the single node of the local stack and the tests.
    node_id: int = 1
    quorum_voters: str | None = None
    cluster_id: str | None = None
    internal_replication: int = 1
    extra_properties: tuple[str, ...] = ()     # "key=value" lines appended to server.properties

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    def _listener_properties(self) -> list[str]:
        if self.security is None:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ]
        sec = self.security
        mech = sec.mechanism.lower()
        # The controller listener stays PLAINTEXT on 127.0.0.1: only this node's own broker
        # role talks to it (clients never see it: it is not advertised).
        return [
            f"listeners=SASL_SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{self.port}",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            f"sasl.enabled.mechanisms={sec.mechanism}",
            f"sasl.mechanism.inter.broker.protocol={sec.mechanism}",
            f"listener.name.sasl_ssl.{mech}.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{sec.inter_broker_user}" password="{sec.scram_users[sec.inter_broker_user]}";',
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={sec.keystore}",
            f"ssl.keystore.password={sec.keystore_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={sec.truststore_pem}",
            "ssl.client.auth=none",
        ]

    def _properties(self) -> str:
        rf = self.internal_replication
        min_isr = 1 if rf < 3 else 2
        return "\n".join([
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={self.quorum_voters or f'{self.node_id}@127.0.0.1:{self.controller_port}'}",
            *self._listener_properties(),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={self.data_dir}",
            # Single node: internal topics cannot be replicated (a cluster: internal_replication).
            f"offsets.topic.replication.factor={rf}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            # Local runs: consumers join at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms=0",
            # Faust's default session timeout is 60 s; local settings use ~6 s.
            "group.min.session.timeout.ms=1000",
            "auto.create.topics.enable=true",
            "num.partitions=1",
            "log.retention.check.interval.ms=60000",
            *self.extra_properties,
            "",
        ])

    def _java_cmd(self, *args: str) -> list[str]:
        libs = self.libs or default_libs_dir()
        cp = f"{libs}/*"
        return ["java", f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J2}", f"-Dkafka.logs.dir={self.home}",
                "-cp", cp, *args]

    def prepare(self) -> None:
        """Write server.properties and format KRaft storage once (a formatted log is kept)."""
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text(self._properties())
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = (self.home / "cluster.id")
        if self.cluster_id is not None:
            cluster_id.write_text(self.cluster_id)
        if not cluster_id.exists():
            cluster_id.write_text(new_cluster_id())
        # SCRAM credentials live in the cluster metadata log; in KRaft they can be written at
        # format time (before any listener is up), so the first login already works.
        scram: list[str] = []
        if self.security is not None:
            for name, password in self.security.scram_users.items():
                scram += ["--add-scram", f"{self.security.mechanism}=[name={name},password={password}]"]
        subprocess.run(self._java_cmd("kafka.tools.StorageTool", "format", "-t", cluster_id.read_text(),
                                      "-c", str(props), *scram),
                       check=True, stdout=subprocess.DEVNULL)

    def pid(self) -> int | None:
        pid = procs.read_pid(self.pid_file)
        return pid if procs.pid_alive(pid) else None

    def healthy(self) -> bool:
        return procs.port_open("127.0.0.1", self.port) and self._metadata_ok()

    def client_settings(self, base=None, user: str | None = None):
        """Settings (``base`` or the defaults) pointed at this broker, logged in as ``user``
        (default: the inter-broker user) when it is secured."""
        from pulse.config import Settings
        s = (base or Settings()).with_(kafka_bootstrap=self.bootstrap)
        if self.security is None:
            return s
        user = user or self.security.inter_broker_user
        return s.with_(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=self.security.mechanism,
                       kafka_sasl_username=user, kafka_sasl_password=self.security.scram_users[user],
                       kafka_sasl_password_file="", kafka_ssl_cafile=str(self.security.truststore_pem))

    def _metadata_ok(self) -> bool:
        # A broker that listens is not yet one that answers: ask for cluster metadata.
        try:
            from kafka import KafkaAdminClient

            from pulse.kafka_security import kafka_python_kwargs
            admin = KafkaAdminClient(**kafka_python_kwargs(self.client_settings()), request_timeout_ms=3000)
            try:
                admin.describe_cluster()
            finally:
                admin.close()
            return True
        except Exception:
            return False

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker if it is not running; return False if it already was."""
        proc = self.launch()
        if proc is None:
            return False
        self.wait_healthy(proc, timeout)
        return True

    def launch(self):
        """Spawn the broker without waiting for it (the members of a cluster are started
        together: none is healthy before a majority of the quorum runs); None if it runs."""
        if self.pid():
            if procs.port_open("127.0.0.1", self.port):
                return None
        if procs.port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken by another process")
        if self.libs is None:
            self.libs = fetch_jars()
        self.prepare()
        self._proc = procs.spawn(self._java_cmd("kafka.Kafka", str(self.home / "server.properties")),
                                 self.log_file, self.pid_file)
        return self._proc

    def wait_healthy(self, proc=None, timeout: float = 90.0) -> None:
        proc = proc or getattr(self, "_proc", None)
        procs.wait_until(self.healthy, timeout, f"Kafka broker on {self.bootstrap}",
                         interval=0.5, alive=(lambda: proc.poll() is None) if proc else None, log=self.log_file)

    def stop(self, timeout: float = 60.0) -> None:
        # SIGTERM makes Kafka flush and close its logs cleanly (no recovery on next start).
        procs.terminate(self.pid(), timeout=timeout)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        import signal
        procs.terminate(self.pid(), timeout=5, sig=signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    from pulse.config import Settings
    s = Settings.from_env()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["fetch", "start", "stop", "status"])
    p.add_argument("--dir", type=Path, default=s.state_dir / "kafka")
    p.add_argument("--port", type=int, default=int(s.kafka_bootstrap.rsplit(":", 1)[1]))
    p.add_argument("--controller-port", type=int, default=s.kafka_controller_port)
    a = p.parse_args(argv)
    if a.action == "fetch":
        print(fetch_jars(quiet=False))
        return 0
    broker = KafkaBroker(a.dir, a.port, a.controller_port)
    if a.action == "start":
        print("started" if broker.start() else "already running", broker.bootstrap)
    elif a.action == "stop":
        broker.stop()
        print("stopped")
    else:
        ok = broker.healthy()
        print(("healthy" if ok else "down"), broker.bootstrap)
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
