"""The Dagster-free column catalog the dashboard serves equals the lineage the code location attaches."""

import subprocess
import sys
from pathlib import Path

from dbt_like_sql import load_project
from dbt_like_sql.catalog import column_catalog

REPO = Path(__file__).resolve().parents[2]


def test_catalog_matches_load_project_for_every_model() -> None:
    project = {".".join(model.key.path): model for model in load_project()}
    catalog = {model["key"]: model for model in column_catalog()}
    assert set(catalog) == set(project) and len(catalog) > 10
    for key, model in project.items():
        entry = catalog[key]
        assert entry["deps"] == [".".join(dep.path) for dep in model.deps], key
        assert (entry["group"], entry["materialized"]) == (model.group, model.materialized), key
        assert [c["name"] for c in entry["columns"]] == list(model.output_columns or []), key
        lineage = model.column_lineage or {}
        for column in entry["columns"]:
            expected = [f"{s}.{t}.{c}" for s, t, c in lineage.get(column["name"], ())]
            assert column["sources"] == expected, (key, column["name"])
            assert column["description"] == (
                model.columns[column["name"]].description if column["name"] in model.columns else None
            )
    top = {c["name"]: c["sources"] for c in catalog["mart.commerce_top_products"]["columns"]}
    assert any(source.startswith("stg.") for sources in top.values() for source in sources)


def test_catalog_and_lineage_import_without_dagster() -> None:
    code = (
        "import sys; from dbt_like_sql.catalog import column_catalog; column_catalog(); "
        "loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')); "
        "print(len(loaded)); assert not loaded, loaded[:5]"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0"
