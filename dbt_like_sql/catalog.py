"""The model files and their column-level lineage, without Dagster.

:func:`dbt_like_sql.project.load_project` builds Dagster assets from the same files and uses these
helpers (header split, dependency order, lineage in dependency order); the read API imports only
this module to serve the lineage (``/dashboard/data/lineage``), so it never loads Dagster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dbt_like_sql import lineage

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "models"

_HEADER_RE = re.compile(r"\A\s*/\*\s*---[ \t]*\r?\n(?P<yaml>.*?)\r?\n[ \t]*---\s*\*/(?P<sql>.*)\Z", re.DOTALL)

K = TypeVar("K", bound=Hashable)


class SqlProjectError(ValueError):
    """A model file or the model graph is invalid; the message names the file and the problem."""


def split_header(text: str, path: Path | str = "<string>") -> tuple[dict[str, Any], str]:
    """Split a model file into its YAML config mapping and the SQL body."""
    match = _HEADER_RE.match(text)
    if not match:
        raise SqlProjectError(
            f"{path}: missing config header; a model must start with a '/* ---' ... '--- */' YAML block"
        )
    try:
        config = yaml.safe_load(match["yaml"]) or {}
    except yaml.YAMLError as exc:
        raise SqlProjectError(f"{path}: invalid YAML in config header: {exc}") from exc
    if not isinstance(config, dict):
        raise SqlProjectError(f"{path}: config header must be a YAML mapping, got {type(config).__name__}")
    sql = match["sql"].strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    if not sql:
        raise SqlProjectError(f"{path}: the model has no SQL after its config header")
    return config, sql


def discover_model_files(models_dir: Path) -> list[Path]:
    """Every ``.sql`` file below ``models_dir``, in a stable order."""
    return sorted(p for p in models_dir.rglob("*.sql") if p.is_file())


def default_group(path: Path, models_dir: Path) -> str:
    """A model's group when its header names none: its folder under the models directory."""
    rel = path.relative_to(models_dir)
    return rel.parts[0] if len(rel.parts) > 1 else "default"


def dependency_order(
    deps: Mapping[K, Sequence[K]], label: Callable[[K], str], where: Callable[[K], object]
) -> list[K]:
    """Depth-first order over model->model deps, so a cycle can be reported with its full path."""
    order: list[K] = []
    state: dict[K, int] = {}  # 1 = visiting, 2 = done

    def visit(key: K, stack: list[K]) -> None:
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            cycle = stack[stack.index(key) :] + [key]
            path = " -> ".join(label(k) for k in cycle)
            raise SqlProjectError(f"dependency cycle between models: {path} ({where(key)})")
        state[key] = 1
        for dep in deps[key]:
            if dep in deps:
                visit(dep, [*stack, key])
        state[key] = 2
        order.append(key)

    for key in sorted(deps, key=label):
        visit(key, [])
    return order


def lineage_in_order(
    order: Sequence[K], relations: Mapping[K, tuple[str, str, str, Sequence[str] | None]]
) -> dict[K, dict[str, tuple[lineage.ColumnSource, ...]] | None]:
    """Column lineage of each ``(schema, name, sql, output columns)``, upstream models first.

    Walking in dependency order lets upstream models' output columns resolve unqualified columns.
    """
    known_columns: dict[str, dict[str, dict[str, str]]] = {}
    result: dict[K, dict[str, tuple[lineage.ColumnSource, ...]] | None] = {}
    for key in order:
        schema, name, sql, output = relations[key]
        result[key] = lineage.column_lineage(sql, known_columns)
        if output is not None:
            known_columns.setdefault(schema, {})[name] = {col: "UNKNOWN" for col in output}
    return result


def column_catalog(models_dir: Path = DEFAULT_MODELS_DIR) -> list[dict[str, Any]]:
    """Every model with its columns and, per column, the upstream ``schema.table`` columns it reads.

    Headers are read, not validated: the code location validates the same files when it loads.
    """
    relations: dict[str, tuple[str, str, str, Sequence[str] | None]] = {}
    deps: dict[str, list[str]] = {}
    info: dict[str, dict[str, Any]] = {}
    for path in discover_model_files(Path(models_dir)):
        config, sql = split_header(path.read_text(encoding="utf-8"), path)
        schema, name = str(config.get("schema")), str(config.get("name", path.stem))
        key = f"{schema}.{name}"
        query = lineage.parse_query(sql)
        output = lineage.output_columns(query)
        relations[key] = (schema, name, sql, output)
        deps[key] = [f"{s}.{t}" for s, t in lineage.referenced_tables(query)]
        columns = config.get("columns") or {}
        info[key] = {
            "key": key,
            "asset_key": f"{schema}/{name}",
            "group": config.get("group", default_group(path, Path(models_dir))),
            "materialized": config.get("materialized", "view"),
            "description": config.get("description"),
            "deps": deps[key],
            "column_docs": {c: v.get("description") for c, v in columns.items() if isinstance(v, dict)},
        }
    order = dependency_order(deps, label=lambda k: k, where=lambda k: k)
    by_model = lineage_in_order(order, relations)
    models = []
    for key in order:
        model = info[key]
        col_lineage = by_model[key] or {}
        names = relations[key][3] or list(col_lineage)
        docs = model.pop("column_docs")
        model["columns"] = [
            {
                "name": column,
                "description": docs.get(column),
                "sources": [f"{s}.{t}.{c}" for s, t, c in col_lineage.get(column, ())],
            }
            for column in names
        ]
        models.append(model)
    return models
