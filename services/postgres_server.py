"""PostgreSQL from Debian's packages, running our own cluster under the services home.

The cluster is owned by the ``postgres`` OS user (the server refuses to run as root), listens only on
127.0.0.1, and has one login superuser ``afluente``/``afluente`` with databases ``afluente`` and
``ferretdb`` (FerretDB's backend). Tuned for tests/benchmarks but durable: fsync stays on.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from services import proc
from services.base import (
    FERRETDB_DATABASE,
    HOST,
    PG_DATABASE,
    PG_PASSWORD,
    PG_USER,
    ConnectionInfo,
    Service,
    Step,
    is_root,
)

# Settings rewritten into afluente.conf before every start (postgresql.conf includes it).
TUNING = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "'512MB'",
    "synchronous_commit": "off",  # commits may be lost on a crash, the data never corrupts (fsync stays on)
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    "work_mem": "'16MB'",
    "maintenance_work_mem": "'256MB'",
    "log_checkpoints": "off",
    "log_lock_waits": "on",  # a statement waiting > deadlock_timeout (1 s) for a lock is logged
    "logging_collector": "off",  # stderr goes to the services log file
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "log_timezone": "'UTC'",
    "timezone": "'UTC'",
}


def pg_bin_dir() -> Path | None:
    """Newest /usr/lib/postgresql/<ver>/bin with a server, or $AFLUENTE_PG_BIN."""
    override = os.environ.get("AFLUENTE_PG_BIN")
    if override:
        return Path(override) if (Path(override) / "postgres").exists() else None
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    if not candidates:
        return None

    def version(bindir: Path) -> float:
        name = bindir.parent.name
        return float(name) if name.replace(".", "", 1).isdigit() else 0.0

    return max(candidates, key=version)


class Postgres(Service):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM ("smart") would wait for pooled clients forever
    stop_timeout = 60.0
    start_timeout = 60.0

    @property
    def run_as(self) -> str | None:  # type: ignore[override]
        return "postgres" if is_root() else None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "run"

    def data_paths(self) -> list[Path]:
        return [self.data_dir, self.socket_dir]

    def url(self, database: str = PG_DATABASE, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{PG_USER}:{PG_PASSWORD}@{HOST}:{self.port}/{database}"

    def conninfo(self, database: str = PG_DATABASE) -> str:
        """libpq URL for psycopg.connect()."""
        return self.url(database, driver="postgresql")

    # ----- install
    def install(self, step: Step) -> None:
        if pg_bin_dir() is not None:
            return
        if not is_root():
            raise proc.SetupError("PostgreSQL is not installed; run: sudo apt-get install -y postgresql")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        with step("apt-get update"):
            proc.run(["apt-get", "update"], log_path=self.log_path, env=env)
        with step("apt-get install postgresql"):
            proc.run(
                ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
                log_path=self.log_path,
                env=env,
            )
        if pg_bin_dir() is None:
            raise proc.SetupError("apt-get ran but /usr/lib/postgresql/*/bin/postgres is missing")
        self._stop_debian_default_cluster()

    def _stop_debian_default_cluster(self) -> None:
        """Debian's postinst may start a 'main' cluster on 5432, which would take our port."""
        if not shutil.which("pg_lsclusters"):
            return
        out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] == str(self.port) and parts[3].startswith("online"):
                subprocess.run(["pg_ctlcluster", parts[0], parts[1], "stop"], capture_output=True)

    # ----- prepare
    def _chown(self, path: Path) -> None:
        if is_root():
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _as_pg_user(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if is_root() else cmd

    def prepare(self, step: Step) -> None:
        bindir = pg_bin_dir()
        assert bindir is not None
        for d in (self.dir, self.socket_dir):
            d.mkdir(parents=True, exist_ok=True)
            self._chown(d)
        if is_root():
            check = subprocess.run(self._as_pg_user(["test", "-w", str(self.dir)]), capture_output=True)
            if check.returncode != 0:
                raise proc.SetupError(
                    f"the postgres OS user cannot write {self.dir}; put AFLUENTE_SERVICES_HOME somewhere "
                    "every user can traverse (e.g. not under a 0700 home directory)"
                )
        if not (self.data_dir / "PG_VERSION").exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)
            pwfile = self.dir / ".pwfile"
            pwfile.write_text(PG_PASSWORD + "\n")
            self._chown(pwfile)
            try:
                with step("initdb", str(self.data_dir)):
                    proc.run(
                        self._as_pg_user(
                            [
                                str(bindir / "initdb"),
                                "-D",
                                str(self.data_dir),
                                "-U",
                                PG_USER,
                                f"--pwfile={pwfile}",
                                "-E",
                                "UTF8",
                                "--no-locale",
                                "--auth-local=trust",
                                "--auth-host=scram-sha-256",
                            ]
                        ),
                        log_path=self.log_path,
                    )
            finally:
                pwfile.unlink(missing_ok=True)
            conf = self.data_dir / "postgresql.conf"
            with open(conf, "a") as fh:
                fh.write(
                    "\n# afluente dev-services settings (rewritten on every `services up`)\n"
                    "include_if_exists = 'afluente.conf'\n"
                )
        sock = str(self.socket_dir)
        # A unix socket path must fit in 107 bytes; fall back to TCP only when the home is too deep.
        sockets = sock if len(sock) + len("/.s.PGSQL.65535") < 100 else ""
        settings = dict(TUNING, port=str(self.port), unix_socket_directories=f"'{sockets}'")
        afl_conf = self.data_dir / "afluente.conf"
        afl_conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self._chown(afl_conf)

    def command(self) -> tuple[list[str], dict[str, str] | None, Path | None]:
        bindir = pg_bin_dir()
        assert bindir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
        return [str(bindir / "postgres"), "-D", str(self.data_dir)], env, self.dir

    # ----- readiness
    def probe(self) -> bool:
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), connect_timeout=3) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def after_ready(self, step: Step) -> None:
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True, connect_timeout=5) as conn:
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            for db in (PG_DATABASE, FERRETDB_DATABASE):
                if db not in existing:
                    conn.execute(f'CREATE DATABASE "{db}" OWNER "{PG_USER}"')

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def info(self) -> ConnectionInfo:
        url = self.url()
        return ConnectionInfo(
            name=self.name,
            host=HOST,
            port=self.port,
            url=url,
            env={
                "AFLUENTE_PG_URL": url,
                "PGHOST": HOST,
                "PGPORT": str(self.port),
                "PGUSER": PG_USER,
                "PGPASSWORD": PG_PASSWORD,
                "PGDATABASE": PG_DATABASE,
            },
            extra={
                "user": PG_USER,
                "password": PG_PASSWORD,
                "database": PG_DATABASE,
                "libpq_url": self.conninfo(),
                "ferretdb_database": FERRETDB_DATABASE,
            },
        )
