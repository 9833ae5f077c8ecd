"""The production deployment files are valid for Dagster 1.13 and agree with each other and with the code.

Instance files are loaded by Dagster itself (``DagsterInstance.from_config``: schema, conflicting keys,
run coordinator / launcher / python_logs construction) with only the storage swapped for SQLite; the
PostgreSQL storage is exercised by ``tests/integration/test_production_instance.py``.
"""

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, DefaultRunLauncher, QueuedRunCoordinator
from dagster_docker import DockerRunLauncher

from assets.sources.kafka_topic._sensor import PARTITION_TAG_PREFIX, PIPELINE_TAG, RANGE_KEY_TAG
from assets.sources.landing_feed.contract import LANDING_FILE_TAG
from orchestration.json_logs import PLATFORM_LOGGERS, JsonFormatter
from resources.settings import SETTINGS

# Dagster flags python_logs.dagster_handler_config (the JSON run handler) as beta each time it is read.
pytestmark = pytest.mark.filterwarnings("ignore:Handling yaml-defined logging")

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_FILES = {"dagster.yaml": DefaultRunLauncher, "dagster.docker.yaml": DockerRunLauncher}
DAGSTER_PG_VARS = [
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
]
DAGSTER_GRPC_VARS = ["DAGSTER_GRPC_HOST", "DAGSTER_GRPC_PORT"]
# Where the image puts the gRPC workspace (Dockerfile) and the compose commands read it.
IMAGE_WORKSPACE = "/opt/dagster/workspace.yaml"


def _yaml(relative: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / relative).read_text())


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip().strip('"')
    return values


def _strings(node: object) -> Iterator[str]:
    """Every string of a parsed YAML document (keys and values), comments excluded."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def _readme_variables() -> set[str]:
    names = set()
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


@pytest.fixture(params=sorted(INSTANCE_FILES))
def instance_file(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def instance(instance_file: str, tmp_path: Path) -> Iterator[DagsterInstance]:
    """The instance file loaded by Dagster, storage swapped for SQLite under tmp_path."""
    config = _yaml(f"orchestration/{instance_file}")
    config["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.from_config(str(tmp_path)) as loaded:
        yield loaded


def test_both_instance_files_differ_only_by_run_launcher() -> None:
    local, docker = _yaml("orchestration/dagster.yaml"), _yaml("orchestration/dagster.docker.yaml")
    assert local.pop("run_launcher") == {"module": "dagster", "class": "DefaultRunLauncher"}
    assert docker.pop("run_launcher")["class"] == "DockerRunLauncher"
    assert local == docker


def test_storage_is_postgres_read_from_the_environment(instance_file: str) -> None:
    config = _yaml(f"orchestration/{instance_file}")
    db = dict(config["storage"]["postgres"]["postgres_db"])
    assert db.pop("scheme") == "postgresql+psycopg2"  # the driver dagster-postgres is written for
    assert {field: spec["env"] for field, spec in db.items()} == {
        "hostname": "DAGSTER_PG_HOST",
        "port": "DAGSTER_PG_PORT",
        "username": "DAGSTER_PG_USER",
        "password": "DAGSTER_PG_PASSWORD",
        "db_name": "DAGSTER_PG_DB",
    }


def test_instance_file_is_loaded_by_dagster(instance_file: str, instance: DagsterInstance) -> None:
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert type(instance.run_launcher) is INSTANCE_FILES[instance_file]
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None and 1 <= queue.max_concurrent_runs <= 4  # sized for a small machine
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
    assert instance.run_retries_retry_on_asset_or_op_failure is False
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 180
    assert instance.run_monitoring_cancel_timeout_seconds == 180
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert not instance.telemetry_enabled
    assert set(instance.managed_python_loggers) == set(PLATFORM_LOGGERS)
    assert instance.python_log_level == "INFO"
    json_handlers = [h for h in instance.get_handlers() if isinstance(h.formatter, JsonFormatter)]
    assert len(json_handlers) == 1


def _limits() -> dict[str, dict[str, Any]]:
    runs = _yaml("orchestration/dagster.yaml")["concurrency"]["runs"]
    return {limit["key"]: limit for limit in runs["tag_concurrency_limits"]}


def test_tag_limits_use_the_tags_the_sensors_set() -> None:
    limits = _limits()
    per_value = {
        key for key, limit in limits.items() if limit.get("value") == {"applyLimitPerUniqueValue": True}
    }
    assert {LANDING_FILE_TAG, RANGE_KEY_TAG, PIPELINE_TAG} <= per_value
    assert limits[LANDING_FILE_TAG]["limit"] == 1 and limits[RANGE_KEY_TAG]["limit"] == 1
    partitions = sorted(
        int(k.removeprefix(PARTITION_TAG_PREFIX)) for k in limits if k.startswith(PARTITION_TAG_PREFIX)
    )
    assert partitions == list(range(8))
    assert all(limits[f"{PARTITION_TAG_PREFIX}{p}"]["limit"] == 1 for p in partitions)
    assert all(k in per_value for k in limits if k.startswith(PARTITION_TAG_PREFIX))


class _Run:
    def __init__(self, **tags: str) -> None:
        self.tags = tags


def _kafka_run(topic: str, *partitions: int) -> _Run:
    return _Run(**{f"{PARTITION_TAG_PREFIX}{p}": topic for p in partitions}, **{PIPELINE_TAG: "commerce"})


def test_tag_limits_block_what_they_should() -> None:
    """Dagster's own run-queue counter (internal: no public API evaluates tag limits) over our limits."""
    from dagster._utils.tags import TagConcurrencyLimitsCounter

    limits = list(_limits().values())

    def blocked(running: list[_Run], candidate: _Run) -> bool:
        return TagConcurrencyLimitsCounter(limits, running).is_blocked(candidate)  # type: ignore[arg-type]

    # A run over partitions 0 and 1 blocks another run reading partition 1, not one reading partition 2.
    assert blocked([_kafka_run("t", 0, 1)], _kafka_run("t", 1))
    assert not blocked([_kafka_run("t", 0, 1)], _kafka_run("t", 2))
    assert not blocked([_kafka_run("t", 0)], _kafka_run("other", 0))  # per topic
    # Two ingest runs per pipeline at most.
    assert blocked([_kafka_run("t", 0), _kafka_run("t", 1)], _kafka_run("t", 2))
    # One run per landed file.
    assert blocked([_Run(**{LANDING_FILE_TAG: "a.csv"})], _Run(**{LANDING_FILE_TAG: "a.csv"}))
    assert not blocked([_Run(**{LANDING_FILE_TAG: "a.csv"})], _Run(**{LANDING_FILE_TAG: "b.csv"}))


def test_workspaces_load_the_same_code_location() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]
    (dev,) = _yaml("workspace.yaml")["load_from"]
    assert dev["python_module"]["module_name"] == project["module_name"]
    assert dev["python_module"]["location_name"] == project["code_location_name"]
    (prod,) = _yaml("orchestration/workspace.grpc.yaml")["load_from"]
    grpc = prod["grpc_server"]
    assert grpc["location_name"] == project["code_location_name"]
    assert grpc["host"] == {"env": "DAGSTER_GRPC_HOST"} and grpc["port"] == {"env": "DAGSTER_GRPC_PORT"}
    assert "workspace.grpc.yaml" in (ROOT / "workspace.yaml").read_text()


def test_env_example_documents_every_setting_and_compose_variable() -> None:
    env = _env_example()
    assert {s.name for s in SETTINGS} <= set(env), "add the setting to .env.example"
    compose_vars = {
        name
        for text in _strings(_yaml("docker-compose.yml"))
        for name in re.findall(r"\$\{([A-Z0-9_]+)", text)
    }
    assert compose_vars <= set(env), f"document in .env.example: {sorted(compose_vars - set(env))}"
    assert {*DAGSTER_PG_VARS, *DAGSTER_GRPC_VARS} <= set(env)
    undocumented = set(env) - _readme_variables()
    assert not undocumented, f"add to the README configuration table: {sorted(undocumented)}"


def test_env_example_holds_placeholders_not_secrets() -> None:
    env = _env_example()
    passwords = {name: value for name, value in env.items() if "PASSWORD" in name}
    assert passwords and set(passwords.values()) == {"change-me"}
    assert ":change-me@" in env["WAREHOUSE_URL"]


def test_docker_launcher_forwards_every_setting_on_the_compose_network() -> None:
    launcher = _yaml("orchestration/dagster.docker.yaml")["run_launcher"]["config"]
    compose = _yaml("docker-compose.yml")
    forwarded = set(launcher["env_vars"])
    assert {s.name for s in SETTINGS} | set(DAGSTER_PG_VARS) <= forwarded
    # DockerRunLauncher reads each name from the daemon's environment and fails a launch if unset.
    assert forwarded <= set(compose["services"]["daemon"]["environment"])
    assert launcher["network"] == compose["networks"]["default"]["name"]
    fixed_names = {spec["name"] for spec in compose["volumes"].values() if spec and "name" in spec}
    for mount in launcher["container_kwargs"]["volumes"]:
        assert mount.split(":")[0] in fixed_names, mount


def test_dockerfile_builds_the_one_image_the_compose_services_run() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    # Exactly the versions of uv.lock, never a resolution (tests/unit/test_locked_install.py checks the lock).
    assert "COPY pyproject.toml uv.lock README.md ./" in dockerfile
    assert (
        len(re.findall(r"^\s*(?:&& |RUN )?uv sync --locked", dockerfile, re.M)) == 2
        and "pip install -r" not in dockerfile
    )
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in packages["include"]:
        name = package.rstrip("*")
        assert re.search(rf"^COPY {name} \./{name}$", dockerfile, re.M), f"Dockerfile does not copy {name}/"
    assert "ENV" in dockerfile and "DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
    assert 'cp orchestration/dagster.docker.yaml "$DAGSTER_HOME/dagster.yaml"' in dockerfile
    assert f"cp orchestration/workspace.grpc.yaml {IMAGE_WORKSPACE}" in dockerfile
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert (
        cmd
        and yaml.safe_load(cmd.group(1)) == _yaml("docker-compose.yml")["services"]["user_code"]["command"]
    )
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "data", ".git"} <= set(ignored)


def test_compose_platform_services_use_the_image_files() -> None:
    services = _yaml("docker-compose.yml")["services"]
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == IMAGE_WORKSPACE, name
    assert services["user_code"]["command"] == [
        "dagster", "api", "grpc", "-m", "orchestration.definitions", "-h", "0.0.0.0", "-p", "4000",
    ]  # fmt: skip
    assert services["api"]["command"] == ["python", "-m", "api"]


def test_postgres_init_script_creates_the_dagster_database() -> None:
    script = ROOT / "docker/postgres/initdb/10-dagster-database.sh"
    assert script.stat().st_mode & 0o111, "the init script must be executable"
    text = script.read_text()
    assert "DAGSTER_PG_DB" in text and "CREATE DATABASE" in text
