"""Apache Kafka 4.x in KRaft mode (one process acting as broker + controller), jars from Maven Central.

``services/kafka/pom.xml`` lists the server artifacts; Maven copies them into ``<home>/kafka/lib`` once,
storage is formatted once with ``kafka.tools.StorageTool``, and the server runs as
``java -cp 'lib/*' kafka.Kafka server.properties`` with a capped heap.
"""

from __future__ import annotations

import base64
import contextlib
import os
import uuid
from pathlib import Path

from services import proc
from services.base import (
    HOST,
    KAFKA_CONTROLLER_PORT_ENV,
    SERVICES_SRC,
    ConnectionInfo,
    Service,
    Step,
    env_port,
    find_java,
    maven_copy_dependencies,
)

KAFKA_VERSION = "4.1.1"  # keep in sync with services/kafka/pom.xml and docker-compose.yml
POM = SERVICES_SRC / "kafka" / "pom.xml"
HEAP = ["-Xms256m", "-Xmx512m"]
READINESS_TOPIC = "__afluente_readiness"

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class Kafka(Service):
    name = "kafka"
    stop_timeout = 45.0
    start_timeout = 120.0

    @property
    def lib_dir(self) -> Path:
        return self.dir / "lib"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def config_dir(self) -> Path:
        return self.dir / "config"

    @property
    def controller_port(self) -> int:
        return env_port(*KAFKA_CONTROLLER_PORT_ENV)

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def data_paths(self) -> list[Path]:
        return [self.data_dir]

    # ----- install
    def _installed_marker(self) -> Path:
        return self.lib_dir / f".complete-{KAFKA_VERSION}"

    def install(self, step: Step) -> None:
        if self._installed_marker().exists():
            return
        with step("maven download", f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}"):
            count = maven_copy_dependencies(POM, self.lib_dir, self.log_path)
        self._installed_marker().write_text(f"{count} jars\n")

    # ----- prepare
    def _java_cmd(self, *args: str) -> list[str]:
        java, _ = find_java("java")
        return [
            java,
            *HEAP,
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{self.lib_dir}/*",
            *args,
        ]

    def server_properties(self) -> str:
        advertised = os.environ.get("AFLUENTE_KAFKA_ADVERTISED_HOST", "localhost")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{advertised}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.retention.hours": "168",
            "log.segment.bytes": "268435456",
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def prepare(self, step: Step) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "server.properties").write_text(self.server_properties())
        (self.config_dir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data_dir / "meta.properties").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            with step("format storage", f"cluster id {cluster_id}"):
                proc.run(
                    self._java_cmd(
                        "kafka.tools.StorageTool",
                        "format",
                        "--ignore-formatted",
                        "-t",
                        cluster_id,
                        "-c",
                        str(self.config_dir / "server.properties"),
                    ),
                    log_path=self.log_path,
                )

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        return self._java_cmd("kafka.Kafka", str(self.config_dir / "server.properties")), None, self.dir

    # ----- readiness: a topic can be created and a message round-trips
    def probe(self) -> bool:
        from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=5000, client_id="afluente-services-probe"
        )
        try:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(READINESS_TOPIC, 1, 1)], timeout_ms=5000)
        finally:
            admin.close()
        token = uuid.uuid4().hex.encode()
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, request_timeout_ms=5000, max_block_ms=5000)
        try:
            meta = producer.send(READINESS_TOPIC, token, partition=0).get(timeout=10)
        finally:
            producer.close(timeout=5)
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            consumer_timeout_ms=5000,
            request_timeout_ms=6000,
        )
        try:
            tp = TopicPartition(READINESS_TOPIC, 0)
            consumer.assign([tp])
            consumer.seek(tp, meta.offset)
            return any(message.value == token for message in consumer)
        finally:
            consumer.close()

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            name=self.name,
            host=HOST,
            port=self.port,
            url=self.bootstrap,
            env={"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap},
            extra={"controller_port": str(self.controller_port), "version": KAFKA_VERSION},
        )
