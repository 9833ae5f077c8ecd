// Exports page: totals with year/sector filters, by country, by sector, by year.
"use strict";

const anoSelect = document.getElementById("ano");
const setorSelect = document.getElementById("setor");

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) q.set(key, value);
  const text = q.toString();
  return text ? "?" + text : "";
}

function fillOptions(select, values) {
  const current = select.value;
  const first = select.options[0];
  select.replaceChildren(first, ...values.map((v) => new Option(String(v), String(v))));
  if (values.map(String).includes(current)) select.value = current;
}

async function refresh() {
  // Filter choices: every year and sector the reports know.
  const all = await Dash.get("/metrics/resumo");
  const sectors = await Dash.get("/dashboard/data/export-sectors?limit=500");
  if (all.ok) fillOptions(anoSelect, all.body.anos);
  if (sectors.ok) fillOptions(setorSelect, sectors.body.map((s) => s.setor));
  const ano = anoSelect.value;
  const setor = setorSelect.value;

  const tiles = document.getElementById("resumo");
  const resumo = await Dash.get("/metrics/resumo" + query({ ano, setor }));
  if (resumo.ok) {
    tiles.replaceChildren(
      Dash.tile("total USD", Dash.num(resumo.body.totalUsd, 2)),
      Dash.tile("total kg", Dash.num(resumo.body.totalKg)),
      Dash.tile("countries", Dash.num(resumo.body.paisesCount)),
      Dash.tile("sectors", Dash.num(resumo.body.setoresCount)),
    );
  } else {
    tiles.replaceChildren(Dash.tile("Totals", Dash.describe(resumo)[1]));
  }

  await Promise.all([
    Dash.chart("by-country", "/metrics/pais" + query({ ano, limit: 15 }), (rows) => rows.length ? {
      data: [{ type: "bar", x: rows.map((r) => r.pais), y: rows.map((r) => r.totalUsd) }],
      layout: { yaxis: { title: { text: "USD" } } },
    } : null),
    Dash.chart("by-sector", "/dashboard/data/export-sectors" + query({ ano, limit: 15 }), (rows) => rows.length ? {
      data: [{ type: "bar", x: rows.map((r) => r.setor), y: rows.map((r) => r.total_usd) }],
      layout: { yaxis: { title: { text: "USD" } } },
    } : null),
    byYear(all, setor),
  ]);
}

// One /metrics/resumo request per year (with the sector filter): the API's own per-year totals.
async function byYear(all, setor) {
  const el = document.getElementById("by-year");
  if (!all.ok) {
    const [state, message] = Dash.describe(all);
    Dash.notice(el, state, message);
    return;
  }
  const years = all.body.anos;
  const answers = await Promise.all(years.map((ano) => Dash.get("/metrics/resumo" + query({ ano, setor }))));
  const x = [];
  const y = [];
  answers.forEach((res, i) => { if (res.ok) { x.push(String(years[i])); y.push(res.body.totalUsd); } });
  if (!x.length) { Dash.notice(el, "empty", "No export rows for this sector."); return; }
  Dash.clearNotice(el);
  await Plotly.react(el, [{ type: "bar", x, y }], Dash.layout({ xaxis: { type: "category" }, yaxis: { title: { text: "USD" } } }), { displaylogo: false, responsive: true });
  el.dataset.source = "/metrics/resumo" + query({ setor });
}

const run = Dash.every(refresh);
anoSelect.addEventListener("change", run);
setorSelect.addEventListener("change", run);
