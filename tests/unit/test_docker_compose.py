"""docker-compose.yml: the data services stay interchangeable with the local dev services
(`python -m services`), and the platform services (Dagster + API) are complete and wired right.

No Docker engine here: the file is checked statically (structure, healthchecks, dependencies,
environment, volumes) against the code and the other deployment files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import services
from resources.settings import SETTINGS
from services.kafka_server import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

# compose service -> dev service it replaces (same port, same client settings)
COUNTERPART = {
    "postgres": "postgres",
    "kafka": "kafka",
    "elasticsearch": "opensearch",
    "mongodb": "ferretdb",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _published(port_spec: str | int | dict) -> tuple[int, int]:
    """(host port, container port) from "5432:5432", "127.0.0.1:5432:5432" or the long syntax."""
    if isinstance(port_spec, dict):
        return int(port_spec["published"]), int(port_spec["target"])
    parts = str(port_spec).split("/")[0].split(":")
    return int(parts[-2]), int(parts[-1])


def _default(value: object) -> str:
    """What a compose value resolves to with no .env: ``${VAR:-default}`` -> ``default``."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))


def test_every_backing_service_is_present(compose: dict[str, Any]) -> None:
    assert set(COUNTERPART) <= set(compose["services"])
    assert set(COUNTERPART.values()) == set(services.SERVICE_NAMES)


@pytest.mark.parametrize("name", sorted(COUNTERPART))
def test_service_has_healthcheck_and_named_volume(compose: dict[str, Any], name: str) -> None:
    svc = compose["services"][name]
    check = svc.get("healthcheck")
    assert check and check.get("test"), f"{name} has no healthcheck"
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    volumes = svc.get("volumes") or []
    sources = [volume.split(":")[0] if isinstance(volume, str) else volume["source"] for volume in volumes]
    named = [source for source in sources if source in (compose.get("volumes") or {})]
    assert named, f"{name} keeps its data in no named volume"
    for source in set(sources) - set(named):  # read-only configuration from the repository
        assert source.startswith("./") and (ROOT / source).exists(), (
            f"{name}: {source!r} is not a named volume"
        )


@pytest.mark.parametrize("name", sorted(COUNTERPART))
def test_ports_match_services_defaults(compose: dict[str, Any], name: str) -> None:
    expected = services.DEFAULT_PORTS[COUNTERPART[name]]
    published = [_published(p) for p in compose["services"][name].get("ports", [])]
    assert (expected, expected) in published, f"{name} must publish {expected}:{expected}, has {published}"


def test_postgres_credentials_match(compose: dict[str, Any]) -> None:
    env = {key: _default(value) for key, value in compose["services"]["postgres"]["environment"].items()}
    assert env["POSTGRES_USER"] == services.PG_USER
    assert env["POSTGRES_PASSWORD"] == services.PG_PASSWORD  # the default; .env may set another
    assert env["POSTGRES_DB"] == services.PG_DATABASE
    assert compose["services"]["postgres"]["image"].startswith("postgres:15")
    assert services.PG_USER in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])


def test_kafka_is_kraft_same_version_and_reachable_from_host(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert f"localhost:{services.DEFAULT_PORTS['kafka']}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"


def test_search_and_mongo_need_no_credentials(compose: dict[str, Any]) -> None:
    es = compose["services"]["elasticsearch"]
    assert es["image"].startswith("docker.elastic.co/elasticsearch/elasticsearch:8.")
    assert str(es["environment"]["xpack.security.enabled"]) == "false"
    assert str(es["environment"]["discovery.type"]) == "single-node"
    mongo = compose["services"]["mongodb"]
    assert mongo["image"].startswith("mongo:7")
    assert "MONGO_INITDB_ROOT_USERNAME" not in (mongo.get("environment") or {})


def test_local_connection_urls_use_the_same_ports(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `services env` exports (default ports) works unchanged against the compose stack."""
    for var, _default in services.PORT_ENV.values():
        monkeypatch.delenv(var, raising=False)
    info = services.connection_info()
    assert info["postgres"].url.endswith(
        f"@127.0.0.1:{services.DEFAULT_PORTS['postgres']}/{services.PG_DATABASE}"
    )
    assert info["kafka"].env["KAFKA_BOOTSTRAP_SERVERS"].endswith(f":{services.DEFAULT_PORTS['kafka']}")
    assert info["opensearch"].env["SEARCH_URL"].endswith(f":{services.DEFAULT_PORTS['opensearch']}")
    assert info["ferretdb"].env["MONGO_URI"].endswith(f":{services.DEFAULT_PORTS['ferretdb']}/")


# ----- the platform services: user code (gRPC), Dagster webserver and daemon, read API

PLATFORM = ("user_code", "webserver", "daemon", "api")
DAGSTER_PG_VARS = {
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USER",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes",
    "depends_on", "healthcheck", "restart", "user", "networks", "working_dir", "secrets",
}  # fmt: skip
# Prometheus scraping the read API, Grafana over Prometheus (issue: observability).
OBSERVABILITY = ("prometheus", "grafana")


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def test_every_service_is_present_with_known_keys(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == set(COUNTERPART) | set(PLATFORM) | set(OBSERVABILITY)
    for name, svc in compose["services"].items():
        assert set(svc) <= SERVICE_KEYS, f"{name}: unexpected keys {set(svc) - SERVICE_KEYS}"


@pytest.mark.parametrize("name", PLATFORM)
def test_platform_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    check = compose["services"][name].get("healthcheck")
    assert check and check["test"][0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)


def test_healthchecks_probe_each_process_the_right_way(compose: dict[str, Any]) -> None:
    tests = {name: " ".join(compose["services"][name]["healthcheck"]["test"]) for name in PLATFORM}
    assert "grpc-health-check -p 4000" in tests["user_code"]
    assert "127.0.0.1:3000/server_info" in tests["webserver"]
    assert "dagster-daemon liveness-check" in tests["daemon"]
    assert "127.0.0.1:8000/ready" in tests["api"]


def test_platform_services_run_the_one_dockerfile_image(compose: dict[str, Any]) -> None:
    images = set()
    for name in PLATFORM:
        svc = compose["services"][name]
        assert svc["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        images.add(svc["image"])
    assert images == {"${AFLUENTE_IMAGE:-afluente:latest}"}
    assert (ROOT / "Dockerfile").is_file()
    # The run launcher uses the image the code location reports.
    env = compose["services"]["user_code"]["environment"]
    assert env["DAGSTER_CURRENT_IMAGE"] == compose["services"]["user_code"]["image"]


def test_depends_on_waits_for_healthy_services(compose: dict[str, Any]) -> None:
    services_ = compose["services"]
    for name in PLATFORM:
        depends = services_[name]["depends_on"]
        assert isinstance(depends, dict) and "postgres" in depends, name
        for target, spec in depends.items():
            assert spec == {"condition": "service_healthy"}, f"{name} -> {target}"
            assert services_[target].get("healthcheck"), (
                f"{name} waits for {target}, which has no healthcheck"
            )
    assert set(services_["user_code"]["depends_on"]) == set(COUNTERPART)  # sensors reach all four
    assert (
        "user_code" in services_["webserver"]["depends_on"]
        and "user_code" in services_["daemon"]["depends_on"]
    )


def test_platform_environment_reaches_every_setting(compose: dict[str, Any]) -> None:
    names = {s.name for s in SETTINGS}
    for name in ("user_code", "daemon", "api"):
        env = compose["services"][name]["environment"]
        assert names <= set(env), f"{name} misses {sorted(names - set(env))} (x-platform-env)"
    for name in ("user_code", "webserver", "daemon"):
        env = compose["services"][name]["environment"]
        assert set(env) >= DAGSTER_PG_VARS, name
    for name in ("webserver", "daemon"):
        env = compose["services"][name]["environment"]
        assert {"DAGSTER_GRPC_HOST", "DAGSTER_GRPC_PORT"} <= set(env), name
        assert (
            _default(env["DAGSTER_GRPC_HOST"]) == "user_code" and _default(env["DAGSTER_GRPC_PORT"]) == "4000"
        )


def test_platform_defaults_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    env = {key: _default(value) for key, value in compose["services"]["daemon"]["environment"].items()}
    pg = compose["services"]["postgres"]["environment"]
    assert env["WAREHOUSE_URL"] == (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{_default(pg['POSTGRES_PASSWORD'])}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    assert (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_PORT"], env["DAGSTER_PG_USER"]) == (
        "postgres",
        "5432",
        "afluente",
    )
    assert env["DAGSTER_PG_PASSWORD"] == _default(pg["POSTGRES_PASSWORD"])
    assert env["DAGSTER_PG_DB"] == _default(pg["DAGSTER_PG_DB"]) != pg["POSTGRES_DB"]
    kafka_env = compose["services"]["kafka"]["environment"]
    assert f"INTERNAL://{env['KAFKA_BOOTSTRAP_SERVERS']}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert (env["SEARCH_URL"], env["SEARCH_ENGINE"]) == ("http://elasticsearch:9200", "elasticsearch")
    assert env["MONGO_URI"] == "mongodb://mongodb:27017/"
    assert env["AFLUENTE_LANDING_DIR"].startswith("/opt/afluente/data/")
    assert _default(compose["services"]["api"]["environment"]["API_HOST"]) == "0.0.0.0"


def test_dagster_database_is_created_next_to_the_warehouse(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["postgres"]["volumes"]
    assert "./docker/postgres/initdb:/docker-entrypoint-initdb.d:ro" in volumes
    assert (ROOT / "docker/postgres/initdb/10-dagster-database.sh").is_file()


def test_shared_volumes_and_docker_socket(compose: dict[str, Any]) -> None:
    services_ = compose["services"]

    def mounts(name: str) -> dict[str, str]:
        return {v.split(":")[1]: v.split(":")[0] for v in services_[name].get("volumes") or []}

    assert mounts("user_code")["/opt/afluente/data"] == "afluente-data"  # sensors read the landing zone
    for name in ("webserver", "daemon"):  # launch / terminate run containers, read their compute logs
        assert mounts(name)["/var/run/docker.sock"] == "/var/run/docker.sock"
        assert mounts(name)["/opt/dagster/dagster_home/storage"] == "dagster-storage"
    assert "/var/run/docker.sock" not in mounts("user_code") and "/var/run/docker.sock" not in mounts("api")
    assert compose["networks"]["default"]["name"] == "afluente"


def test_interpolations_are_compose_syntax(compose: dict[str, Any]) -> None:
    for text in _strings(compose):
        for match in re.finditer(r"\$\{[^}]*\}", text):
            assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*(:-[^}]*)?\}", match.group()), match.group()
        assert "$" not in re.sub(r"\$\{[^}]*\}", "", text), f"bare $ in {text!r} (write $$)"


def test_published_platform_ports(compose: dict[str, Any]) -> None:
    assert [_published(p) for p in compose["services"]["webserver"]["ports"]] == [(3000, 3000)]
    assert [_published(p) for p in compose["services"]["api"]["ports"]] == [(8000, 8000)]
    assert "ports" not in compose["services"]["user_code"] and "ports" not in compose["services"]["daemon"]


def test_prometheus_scrapes_the_api_exposition_and_grafana_shows_it(compose: dict[str, Any]) -> None:
    from api.telemetry import PATH

    services_ = compose["services"]
    config = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    api_port = _published(services_["api"]["ports"][0])[1]
    assert job["metrics_path"] == PATH and job["static_configs"][0]["targets"] == [f"api:{api_port}"]
    assert services_["prometheus"]["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert services_["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    for name in OBSERVABILITY:
        assert services_[name]["healthcheck"]["test"][0] == "CMD", name
        for mount in services_[name]["volumes"]:
            source = mount.split(":")[0]
            assert source in compose["volumes"] or (ROOT / source).exists(), f"{name}: {source}"
    datasource = yaml.safe_load((ROOT / "docker/grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    board = json.loads((ROOT / "docker/grafana/dashboards/afluente.json").read_text())
    exprs = " ".join(t["expr"] for panel in board["panels"] for t in panel["targets"])
    assert all(t["datasource"]["uid"] == source["uid"] for panel in board["panels"] for t in panel["targets"])
    for family in (
        "afluente_http_requests_total", "afluente_http_request_duration_seconds_bucket",
        "afluente_db_query_duration_seconds_bucket", "afluente_aggregate_age_seconds",
        "afluente_kafka_ledger_lag_messages", "afluente_rows_rejected",
    ):  # fmt: skip
        assert family in exprs, family


def test_api_keys_reach_the_api_as_a_secret_file(compose: dict[str, Any]) -> None:
    api_env = {k: _default(v) for k, v in compose["services"]["api"]["environment"].items()}
    assert api_env["API_AUTH"] == "true"
    assert compose["services"]["api"]["secrets"] == ["afluente_api_keys"]
    assert api_env["API_KEYS_FILE"] == "/run/secrets/afluente_api_keys"
    assert compose["secrets"]["afluente_api_keys"]["file"].startswith("./secrets/")
