"""Which layer an asset is in, visible on its node: the open-source UI labels a node with the last part
of its key only, so ``raw/exportacao`` and ``stg/exportacao`` both read ``exportacao`` (Dagster 1.13 has
no display-name setting). Every ``raw``/``stg``/``mart`` asset gets the kind of its layer
(``bronze``/``silver``/``gold``: the UI draws their icons on the node and filters on them, ``kind:silver``);
sources carry ``file``/``kafka``/``mongodb`` and indices ``opensearch`` already.
"""

from collections.abc import Callable

from dagster import AssetsDefinition, AssetSpec, Definitions, map_asset_specs

LAYER_KINDS: dict[str, str] = {"raw": "bronze", "stg": "silver", "mart": "gold"}


def map_specs(defs: Definitions, func: Callable[[AssetSpec], AssetSpec]) -> Definitions:
    """``defs`` with ``func`` applied to every asset spec (public ``map_asset_specs``, one item at a time)."""
    assets = [
        map_asset_specs(func, [item])[0] if isinstance(item, AssetsDefinition | AssetSpec) else item
        for item in defs.assets or []
    ]
    return Definitions(
        assets=assets,
        asset_checks=defs.asset_checks,
        schedules=defs.schedules,
        sensors=defs.sensors,
        jobs=defs.jobs,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
    )


def with_layer_kind(spec: AssetSpec) -> AssetSpec:
    """``spec`` plus the kind of the layer its key starts with (unchanged outside the three layers)."""
    kind = LAYER_KINDS.get(spec.key.path[0])
    return spec.merge_attributes(kinds={kind}) if kind else spec


def with_layer_kinds(defs: Definitions) -> Definitions:
    return map_specs(defs, with_layer_kind)
