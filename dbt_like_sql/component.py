"""``SqlProjectComponent``: the SQL models of a folder as assets, declared in a ``defs.yaml``.

In the spirit of dagster-dbt's project component: one declaration turns every model under
``models_dir`` (or those of the listed ``groups``) into an asset whose data tests are its checks.
Which models refresh on their own is the domain's rule, named by reference (``automation``: a
``module:function`` taking a :class:`dbt_like_sql.SqlModel`, answering an ``AutomationCondition``
or None), so this package never imports the layers above it. Network errors (a PostgreSQL warehouse
restarting) are retried with the platform's policy; permanent errors fail the step at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dagster import AssetsDefinition, AutomationCondition, Definitions
from dagster.components import Component, ComponentLoadContext, Model, Resolvable
from pydantic import Field

from dbt_like_sql.assets import build_sql_model_assets
from dbt_like_sql.project import SqlModel, SqlProject, load_project
from resources.dotted import import_dotted
from resources.error_diagnosis import NETWORK_RETRY_POLICY

_DEFAULT_MODELS_DIR = "dbt_like_sql/models"


class SqlProjectComponent(Component, Resolvable, Model):
    """A folder of dbt-like SQL models (``/* --- header --- */`` + one SELECT each) as assets."""

    models_dir: str = Field(
        default=_DEFAULT_MODELS_DIR,
        description="Folder of the models (<group>/<name>.sql), relative to the project root",
    )
    automation: str | None = Field(
        default=None,
        description=(
            "module:function choosing each model's AutomationCondition from its header (None: models "
            "refresh only through jobs, schedules or by hand)"
        ),
    )
    retry_on_network_errors: bool = Field(
        default=True, description="Retry a step failing on a network error (the platform's retry policy)"
    )
    groups: list[str] | None = Field(
        default=None, description="Only the models of these groups (default: every model in the folder)"
    )
    resource_key: str = Field(default="warehouse", description="Resource key of the warehouse")

    def models_path(self, project_root: Path) -> Path:
        path = Path(self.models_dir)
        return (path if path.is_absolute() else project_root / path).resolve()

    def automation_rule(self) -> Callable[[SqlModel], AutomationCondition | None] | None:
        if self.automation is None:
            return None
        rule = import_dotted(self.automation, "automation")
        if not callable(rule):
            raise ValueError(f"automation: {self.automation!r} is not a function")
        return rule

    def project(self, project_root: Path) -> SqlProject:
        """The models this declaration covers (every header validated, dependencies from the SQL)."""
        path = self.models_path(project_root)
        project = load_project(path)
        if self.groups is None:
            return project
        unknown = set(self.groups) - {model.group for model in project}
        if unknown:
            raise ValueError(f"groups: no model in {path} belongs to {sorted(unknown)}")
        chosen = {key: model for key, model in project.models.items() if model.group in self.groups}
        return SqlProject(models_dir=project.models_dir, models=chosen)

    def build_assets(self, project_root: Path) -> list[AssetsDefinition]:
        return build_sql_model_assets(
            self.project(project_root),
            automation_condition_for=self.automation_rule(),
            resource_key=self.resource_key,
            retry_policy=NETWORK_RETRY_POLICY if self.retry_on_network_errors else None,
        )

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        return Definitions(assets=self.build_assets(context.project_root))
