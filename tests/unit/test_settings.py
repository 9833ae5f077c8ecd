"""The typed settings: values read fresh from the environment, bad values named, one registry derived."""

import subprocess
import sys

import pytest

from resources.settings import (
    AREAS,
    SETTINGS,
    ApiSettings,
    CommerceSettings,
    LandingSettings,
    SearchSettings,
    SettingsError,
    UsageSettings,
    setting,
    setting_as,
)


def test_defaults_are_typed() -> None:
    commerce = CommerceSettings.current()
    assert commerce.max_events_per_run == 200_000 and commerce.refresh_when_caught_up is True
    assert LandingSettings.current().settle_seconds == 2.0
    assert UsageSettings.current().alert_spike_factor == 3.0
    assert SearchSettings.current().engine == "opensearch" and ApiSettings.current().keys == ""


def test_values_are_read_fresh_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CommerceSettings.current().max_events_per_run == 200_000
    monkeypatch.setenv("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN", " 400 ")
    assert CommerceSettings.current().max_events_per_run == 400
    assert CommerceSettings().max_events_per_run == 400
    monkeypatch.delenv("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN")
    assert CommerceSettings.current().max_events_per_run == 200_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("1", True),
        ("false", False),
        ("off", False),
        ("", False),
    ],
)
def test_flags_read_as_before(monkeypatch: pytest.MonkeyPatch, text: str, expected: bool) -> None:
    monkeypatch.setenv("SEARCH_ENABLED", text)
    assert SearchSettings.current().enabled is expected
    assert setting("SEARCH_ENABLED") is expected


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN", "lots", "valid integer"),
        ("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN", "0", "greater than or equal to 1"),
        ("SEARCH_ENABLED", "maybe", "is not a boolean"),
        ("SEARCH_ENGINE", "solr", "opensearch"),
        ("API_PORT", "70000", "less than or equal to 65535"),
        ("USAGE_ALERT_SPIKE_FACTOR", "x3", "valid number"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}='{value}': .*{says}"):
        setting(name)


def test_secrets_stay_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTICSEARCH_PASSWORD", "s3cret")
    assert SearchSettings.current().password == "s3cret"
    assert "s3cret" not in repr(SearchSettings.current())
    secrets = {item.name for item in SETTINGS if item.secret}
    assert secrets == {"WAREHOUSE_URL", "MONGO_URI", "ELASTICSEARCH_PASSWORD"}


def test_the_registry_is_derived_from_the_areas() -> None:
    names = [item.name for item in SETTINGS]
    assert len(names) == len(set(names)) == sum(len(area.model_fields) for area in AREAS)
    by_name = {item.name: item for item in SETTINGS}
    assert by_name["USAGE_MONGO_SAFETY_LAG_SECONDS"].default == "5"  # as written in the environment
    assert by_name["USAGE_ALERT_SPIKE_FACTOR"].default == "3.0"
    for item in SETTINGS:
        assert item.description, item.name
        setting(item.name)  # every default is a valid value of its type


def test_by_name_access_for_declarations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMERCE_KAFKA_TOPIC", "shop.events")
    assert setting_as("COMMERCE_KAFKA_TOPIC", str) == "shop.events"
    assert setting_as("USAGE_MONGO_SAFETY_LAG_SECONDS", float) == 5.0
    assert setting_as("COMMERCE_KAFKA_MAX_RUNS_PER_TICK", int) == 4
    with pytest.raises(TypeError, match="COMMERCE_KAFKA_TOPIC is a str setting; int is needed"):
        setting_as("COMMERCE_KAFKA_TOPIC", int)
    with pytest.raises(TypeError, match="bool setting"):
        setting_as("SEARCH_ENABLED", int)
    with pytest.raises(KeyError):
        setting("NOT_A_SETTING")


def test_settings_import_no_dagster_and_write_no_environment() -> None:
    code = (
        "import os, sys; before = dict(os.environ); import resources.settings as s; "
        "[s.setting(i.name) for i in s.SETTINGS]; "
        "print('dagster' in sys.modules, dict(os.environ) == before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
