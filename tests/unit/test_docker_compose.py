"""docker-compose.yml must stay interchangeable with the local dev services (`python -m services`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import services
from services.kafka_server import KAFKA_VERSION

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"

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
    assert volumes, f"{name} keeps its data in no volume"
    for volume in volumes:
        source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
        assert source in (compose.get("volumes") or {}), f"{name}: {source!r} is not a named volume"


@pytest.mark.parametrize("name", sorted(COUNTERPART))
def test_ports_match_services_defaults(compose: dict[str, Any], name: str) -> None:
    expected = services.DEFAULT_PORTS[COUNTERPART[name]]
    published = [_published(p) for p in compose["services"][name].get("ports", [])]
    assert (expected, expected) in published, f"{name} must publish {expected}:{expected}, has {published}"


def test_postgres_credentials_match(compose: dict[str, Any]) -> None:
    env = compose["services"]["postgres"]["environment"]
    assert env["POSTGRES_USER"] == services.PG_USER
    assert env["POSTGRES_PASSWORD"] == services.PG_PASSWORD
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
