// Operations page: health, freshness of every aggregate, incidents, links to the UI and every asset.
"use strict";

async function health() {
  const res = await Dash.get("/health");
  const box = document.getElementById("health");
  if (!res.body || !res.body.checks) { box.replaceChildren(Dash.tile("health", Dash.describe(res)[1])); return; }
  const checks = res.body.checks;
  const tiles = [Dash.tile("platform", res.body.status), Dash.tile("warehouse (" + checks.warehouse.dialect + ")", checks.warehouse.status)];
  if (checks.freshness) tiles.push(Dash.tile("freshness", checks.freshness.status));
  if (checks.incidents) tiles.push(Dash.tile("unresolved incidents (" + checks.incidents.window_hours + " h)", String(checks.incidents.unresolved)));
  box.replaceChildren(...tiles);
  box.dataset.status = res.body.status;
}

async function freshness() {
  const table = document.getElementById("freshness");
  const res = await Dash.chart("freshness-chart", "/ops/freshness", (r) => r.aggregates.length ? {
    data: [
      { type: "bar", name: "age (minutes)", x: r.aggregates.map((a) => a.asset_key), y: r.aggregates.map((a) => a.age_minutes) },
      { type: "scatter", mode: "markers", name: "threshold (minutes)", marker: { symbol: "line-ew-open", size: 18 }, x: r.aggregates.map((a) => a.asset_key), y: r.aggregates.map((a) => a.threshold_minutes) },
    ],
    layout: { yaxis: { type: "log", title: { text: "minutes" } }, legend: { orientation: "h", y: 1.15 }, margin: { l: 60, r: 20, t: 30, b: 140 } },
  } : null, "No freshness recorded yet: the aggregate_freshness_sensor has not run.");
  if (!res.ok || !res.body.aggregates.length) { table.replaceChildren(); return res; }
  Dash.table(table, res.body.aggregates, [
    ["aggregate", (a) => Dash.link(Dash.assetUrl(a.asset_key), a.asset_key)], ["domain", (a) => a.domain],
    ["status", (a) => Dash.badge(a.status)], ["last built (UTC)", (a) => a.last_updated_at || "never"],
    ["age (min)", (a) => Dash.num(a.age_minutes, 1)], ["threshold (min)", (a) => a.threshold_minutes],
  ]);
  return res;
}

async function incidents() {
  const el = document.getElementById("incidents");
  const res = await Dash.get("/ops/incidents?limit=50");
  if (!res.ok) { Dash.notice(el, ...Dash.describe(res)); return; }
  if (!res.body.length) { Dash.notice(el, "empty", "No incidents recorded."); return; }
  Dash.clearNotice(el);
  Dash.table(el, res.body, [
    ["detected (UTC)", (i) => i.detected_at], ["job", (i) => i.job_name], ["assets", (i) => i.asset_keys],
    ["diagnosis", (i) => Dash.badge(i.diagnosis)], ["action", (i) => Dash.badge(i.action)],
    ["attempt", (i) => i.attempt], ["error", (i) => (i.error_class || "") + ": " + (i.error_message || "").slice(0, 160)],
  ]);
}

// Every SQL model (from the lineage catalog) and every aggregate with a freshness record.
async function assetLinks(fresh) {
  const models = await Dash.get("/dashboard/data/lineage");
  const keys = new Set();
  if (models.ok) models.body.forEach((m) => keys.add(m.asset_key));
  if (fresh && fresh.ok) fresh.body.aggregates.forEach((a) => keys.add(a.asset_key));
  const box = document.getElementById("asset-links");
  box.replaceChildren(...[...keys].sort().map((key) => Dash.link(Dash.assetUrl(key), key)));
}

Dash.every(async () => {
  const [, fresh] = await Promise.all([health(), freshness(), incidents()]);
  await assetLinks(fresh);
});
