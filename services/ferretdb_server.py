"""FerretDB v1.24 (MongoDB wire protocol) on the PostgreSQL backend, built from the Go module proxy.

``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` cannot be used as is: the released
module ships an empty ``build/version/version.txt`` (the binary panics at start-up) and the proxy may
refuse the version list that ``go install`` consults for deprecations. So we ``go mod download`` that
exact version, copy the source under the services home, write version.txt and ``go build`` it.
GOMODCACHE/GOCACHE live under the services home during the build and are deleted after it.

Read-path performance (see ``services/ferretdb_patches.py`` for the profile): the source is patched
before the build (``AFLUENTE_FERRETDB_PATCHES=0`` builds the stock server, under another binary name),
and the server runs with ``GOGC=400`` (a streamed read keeps ~100 MB live, so the heap stays at a few
hundred MB; at the default GOGC=100 garbage collection took 18-25 % of the server's CPU) and
``GOMEMLIMIT=2GiB`` (a soft cap, so queries FerretDB answers in memory, such as sorts, don't grow the
heap five-fold). ``AFLUENTE_FERRETDB_DEBUG_ADDR`` (e.g. ``127.0.0.1:8088``) turns on its debug HTTP
listener (``/debug/pprof``, ``/debug/metrics``); it is off by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from services import proc
from services.base import (
    FERRETDB_DATABASE,
    HOST,
    PG_PASSWORD,
    PG_USER,
    ConnectionInfo,
    Service,
    Step,
    find_tool,
    port_for,
)
from services.ferretdb_patches import PATCH_LEVEL, apply_patches

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
# Go runtime settings of the server process (why: module docstring).
GO_RUNTIME_ENV = {"GOGC": "400", "GOMEMLIMIT": "2GiB"}


def patches_enabled() -> bool:
    """``AFLUENTE_FERRETDB_PATCHES`` (default on): build FerretDB with the read-path patches."""
    return os.environ.get("AFLUENTE_FERRETDB_PATCHES", "1").strip().lower() not in ("0", "false", "no")


def build_name() -> str:
    """Version plus patch level, e.g. ``v1.24.2-perf1`` (``v1.24.2`` for the stock build)."""
    return f"{FERRETDB_VERSION}-{PATCH_LEVEL}" if patches_enabled() else FERRETDB_VERSION


class FerretDB(Service):
    name = "ferretdb"
    depends_on = ("postgres",)
    stop_timeout = 20.0
    start_timeout = 60.0

    @property
    def binary(self) -> Path:
        return self.home / "bin" / f"ferretdb-{build_name()}"

    @property
    def state_dir(self) -> Path:
        return self.dir / "state"

    @property
    def uri(self) -> str:
        return f"mongodb://{HOST}:{self.port}/"

    def postgresql_url(self) -> str:
        return f"postgres://{PG_USER}:{PG_PASSWORD}@{HOST}:{port_for('postgres')}/{FERRETDB_DATABASE}"

    def data_paths(self) -> list[Path]:
        return [self.state_dir]

    def reset_extra(self) -> None:
        """FerretDB's documents live in PostgreSQL: drop its database too (recreated by the next ``up``)."""
        from services.postgres_server import Postgres

        pg = Postgres()
        if proc.live_pid(pg.pid_path) and proc.port_open(pg.port):
            pg.drop_database(FERRETDB_DATABASE)

    # ----- install
    def _go_env(self) -> dict[str, str]:
        go_home = self.home / "go"
        return dict(
            os.environ,
            GOMODCACHE=str(go_home / "pkg" / "mod"),
            GOCACHE=str(go_home / "cache"),
            GOPATH=str(go_home),
            GOFLAGS="-modcacherw -buildvcs=false",
            CGO_ENABLED="0",
            GOTOOLCHAIN="local",
        )

    def install(self, step: Step) -> None:
        if self.binary.exists():
            return
        go = find_tool("go", "golang")
        env = self._go_env()
        with step("go mod download", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"):
            # Run outside any go.mod (a temp dir) so a repository-level module is never touched.
            with tempfile.TemporaryDirectory() as outside:
                out = proc.run(
                    [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
                    log_path=self.log_path,
                    env=dict(env, GOWORK="off"),
                    cwd=outside,
                ).stdout
            module_dir = Path(json.loads(out)["Dir"])
        src = self.home / "build" / f"ferretdb-{FERRETDB_VERSION}"
        with step("go build", str(self.binary)):
            shutil.rmtree(src, ignore_errors=True)
            shutil.copytree(module_dir, src)
            for path in [src, *src.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)
            (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
            if patches_enabled():
                apply_patches(src)
            self.binary.parent.mkdir(parents=True, exist_ok=True)
            partial = self.binary.with_name(self.binary.name + ".partial")
            proc.run(
                [go, "build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"],
                log_path=self.log_path,
                env=env,
                cwd=str(src),
            )
            partial.replace(self.binary)
        shutil.rmtree(src, ignore_errors=True)
        with contextlib.suppress(OSError):
            src.parent.rmdir()  # only when empty
        # The module and build caches (~1 GB) are only needed to build: keep just the binary.
        shutil.rmtree(self.home / "go", ignore_errors=True)

    def prepare(self, step: Step) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRETDB_")}
        env.update(GO_RUNTIME_ENV)
        debug_addr = os.environ.get("AFLUENTE_FERRETDB_DEBUG_ADDR", "").strip() or "-"
        cmd = [
            str(self.binary),
            f"--listen-addr={HOST}:{self.port}",
            "--handler=postgresql",
            f"--postgresql-url={self.postgresql_url()}",
            f"--state-dir={self.state_dir}",
            "--telemetry=disable",
            f"--debug-addr={debug_addr}",
            "--log-level=info",
            "--log-format=console",
        ]
        return cmd, env, self.dir

    # ----- readiness: ping + insert/find round trip
    def probe(self) -> bool:
        import pymongo

        client: pymongo.MongoClient = pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, socketTimeoutMS=10000
        )
        try:
            client.admin.command("ping")
            coll = client["afluente_readiness"]["probe"]
            token = os.urandom(8).hex()
            coll.insert_one({"_id": token})
            found = coll.find_one({"_id": token}) is not None
            coll.delete_one({"_id": token})
            return found
        finally:
            client.close()

    def info(self) -> ConnectionInfo:
        return ConnectionInfo(
            name=self.name,
            host=HOST,
            port=self.port,
            url=self.uri,
            env={"MONGO_URI": self.uri},
            extra={"backend": self.postgresql_url(), "version": FERRETDB_VERSION, "build": build_name()},
        )
