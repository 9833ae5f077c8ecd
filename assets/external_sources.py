"""External source assets: where the data path starts (landing folders, Kafka topics, MongoDB collections).

Dagster does not materialize them; they put the start of each feed in the lineage graph, upstream of
the raw asset that reads it, and name the setting that decides where the data comes from. Each raw
asset module declares its sources next to itself and passes them to its asset (``deps``).
"""

from collections.abc import Sequence

from dagster import AssetKey, AssetSpec

SOURCE_PREFIX = "source"
LANDING_DIR_SETTING = "AFLUENTE_LANDING_DIR"


def source_spec(
    name: str,
    *,
    kind: str,
    domain: str,
    owners: Sequence[str],
    description: str,
    settings: Sequence[str],
) -> AssetSpec:
    """An external asset ``source/<name>`` of ``domain``; ``settings`` name where it is configured."""
    return AssetSpec(
        AssetKey([SOURCE_PREFIX, name]),
        description=description,
        group_name=domain,
        owners=list(owners),
        kinds={kind},
        tags={"layer": SOURCE_PREFIX, "domain": domain},
        metadata={"settings": ", ".join(settings)},
    )


def landing_source_spec(domain: str, *, owners: Sequence[str], formats: str) -> AssetSpec:
    """The landing folder ``<AFLUENTE_LANDING_DIR>/<domain>/`` as the source of a file feed."""
    return source_spec(
        f"landing_{domain}",
        kind="file",
        domain=domain,
        owners=owners,
        description=(
            f"{formats} files dropped in the `{domain}/` folder of the landing zone "
            f"({LANDING_DIR_SETTING}); its file-drop sensor turns each new file into a run."
        ),
        settings=[LANDING_DIR_SETTING],
    )
