"""The code location's resources come from the typed settings; secrets that are set stay EnvVar."""

import os

import pytest
from dagster import EnvVar, build_resources

from orchestration import definitions
from orchestration.platform_resources import platform_resources, secret
from resources.search import SearchResource
from resources.settings import SettingsError


def test_search_resource_gets_the_credentials_the_api_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTICSEARCH_USER", "elastic")
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", "s3cret")
    search = platform_resources()["search"]
    assert isinstance(search, SearchResource)
    assert search.username == "elastic"
    assert isinstance(search.password, EnvVar) and search.password.env_var_name == "ELASTICSEARCH_PASSWORD"
    with build_resources({"search": search}) as built:
        assert (built.search.username, built.search.password) == ("elastic", "s3cret")
    assert isinstance(definitions.resources["search"], SearchResource)


def test_without_credentials_the_search_resource_sends_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELASTICSEARCH_USER", raising=False)
    monkeypatch.delenv("ELASTICSEARCH_PASSWORD", raising=False)
    with build_resources({"search": platform_resources()["search"]}) as built:
        assert (built.search.username, built.search.password) == (None, None)


def test_unset_settings_bind_their_defaults_without_touching_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("WAREHOUSE_URL", "MONGO_URI", "KAFKA_BOOTSTRAP_SERVERS", "AFLUENTE_LANDING_DIR"):
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    resources = platform_resources()
    with build_resources({k: resources[k] for k in ("warehouse", "mongo", "kafka", "landing_zone")}) as built:
        assert built.warehouse.url == "duckdb:///data/warehouse.duckdb"
        assert built.mongo.uri == "mongodb://127.0.0.1:27017/" and built.mongo.database == "afluente"
        assert built.kafka.bootstrap_servers == "127.0.0.1:9092"
        assert built.landing_zone.root == "data/landing"
    assert dict(os.environ) == before


def test_a_set_secret_is_an_env_var_and_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql+psycopg://u:pw@db:5432/w")
    warehouse = platform_resources()["warehouse"]
    assert isinstance(warehouse.url, EnvVar)  # the UI shows the name, not the password
    with build_resources({"warehouse": warehouse}) as built:
        assert built.warehouse.url == "postgresql+psycopg://u:pw@db:5432/w"
    with pytest.raises(ValueError, match="not a secret setting"):
        secret("KAFKA_BOOTSTRAP_SERVERS")
    monkeypatch.setenv("SEARCH_ENGINE", "solr")
    with pytest.raises(SettingsError, match="SEARCH_ENGINE='solr'"):
        platform_resources()
