// Column lineage page: a Sankey per SQL model, upstream columns -> model columns -> model.
"use strict";

const select = document.getElementById("model");
let models = [];

function draw() {
  const el = document.getElementById("lineage");
  const model = models.find((m) => m.key === select.value);
  if (!model) return;
  document.getElementById("model-title").textContent = model.key + " (" + model.materialized + ", " + model.group + ")";
  document.getElementById("model-description").textContent = model.description || "";
  const labels = [model.key];
  const index = new Map([[model.key, 0]]);
  const node = (label) => { if (!index.has(label)) { index.set(label, labels.length); labels.push(label); } return index.get(label); };
  const source = [];
  const target = [];
  for (const column of model.columns) {
    const c = node(model.key + "." + column.name);
    source.push(c); target.push(0);
    for (const upstream of column.sources) { source.push(node(upstream)); target.push(c); }
  }
  Dash.clearNotice(el);
  const height = Math.max(560, 22 * labels.length);
  Plotly.react(el, [{
    type: "sankey", arrangement: "snap",
    node: { label: labels, pad: 8, thickness: 14 },
    link: { source, target, value: source.map(() => 1) },
  }], Dash.layout({ height, margin: { l: 10, r: 10, t: 10, b: 10 } }), { displaylogo: false, responsive: true });
  el.dataset.source = "/dashboard/data/lineage";
  el.dataset.model = model.key;
  Dash.table(document.getElementById("columns"), model.columns, [
    ["column", (c) => c.name], ["description", (c) => c.description], ["upstream columns", (c) => c.sources.join(", ") || "(computed)"],
  ]);
}

Dash.every(async () => {
  const res = await Dash.get("/dashboard/data/lineage");
  const el = document.getElementById("lineage");
  if (!res.ok) { Dash.notice(el, ...Dash.describe(res)); return; }
  models = res.body;
  const current = select.value || new URLSearchParams(location.search).get("model") || (models.find((m) => m.key.startsWith("mart.")) || models[0]).key;
  select.replaceChildren(...models.map((m) => new Option(m.group + " · " + m.key, m.key)));
  select.value = current;
  draw();
});
select.addEventListener("change", draw);
