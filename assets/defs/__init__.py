"""Declared instances of the platform's mechanisms: one folder per source or project, each with a
``defs.yaml`` naming a component (``assets.sources.*``, ``dbt_like_sql``) and its attributes.

Loaded by ``orchestration/definitions.py`` through ``dagster.components.load_from_defs_folder``
(``[tool.dg.project]`` in pyproject.toml names this package as the defs module).
"""
