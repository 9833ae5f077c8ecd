// Commerce page: summary tiles, timeline, funnel, top products, categories, realtime window.
"use strict";

const FUNNEL_STAGES = ["page_view", "search", "add_to_cart", "purchase"];
const REALTIME_FIELDS = ["page_views", "searches", "add_to_carts", "remove_from_carts", "transactions"];

async function summaryTiles() {
  const box = document.getElementById("summary");
  const res = await Dash.get("/api/metrics/summary");
  if (!res.ok) {
    box.replaceChildren(Dash.tile("Summary", Dash.describe(res)[1]));
    return;
  }
  const s = res.body;
  box.replaceChildren(
    Dash.tile("events", Dash.num(s.total_events)),
    Dash.tile("users", Dash.num(s.unique_users)),
    Dash.tile("sessions", Dash.num(s.sessions)),
    Dash.tile("orders", Dash.num(s.orders)),
    Dash.tile("revenue", Dash.num(s.total_revenue, 2)),
    Dash.tile("conversion %", Dash.num(s.conversion_rate_pct, 2)),
  );
}

function timelineUrl() {
  const granularity = document.getElementById("granularity").value;
  return "/api/metrics/timeline?granularity=" + granularity + "&points=" + (granularity === "day" ? 60 : 72);
}

async function refresh() {
  await Promise.all([
    summaryTiles(),
    Dash.chart("timeline", timelineUrl(), (t) => t.points.length ? {
      data: [
        { type: "scatter", mode: "lines+markers", name: "events", x: t.points.map((p) => p.bucket), y: t.points.map((p) => p.events) },
        { type: "scatter", mode: "lines", name: "revenue", yaxis: "y2", x: t.points.map((p) => p.bucket), y: t.points.map((p) => p.revenue) },
      ],
      layout: { yaxis: { title: { text: "events" }, rangemode: "tozero" }, yaxis2: { title: { text: "revenue" }, overlaying: "y", side: "right", rangemode: "tozero" }, margin: { l: 60, r: 70, t: 10, b: 50 } },
    } : null, "No events staged yet."),
    Dash.chart("funnel", "/api/metrics/event-types", (rows) => {
      if (!rows.length) return null;
      const events = Object.fromEntries(rows.map((r) => [r.event_type, r.events]));
      return {
        data: [{ type: "funnel", y: FUNNEL_STAGES, x: FUNNEL_STAGES.map((s) => events[s] || 0), textinfo: "value+percent initial" }],
        layout: { margin: { l: 100, r: 20, t: 10, b: 30 } },
      };
    }),
    Dash.chart("top-products", "/api/metrics/top-products?limit=10", (rows) => rows.length ? {
      data: [{ type: "bar", orientation: "h", x: rows.map((p) => p.revenue), y: rows.map((p) => p.product_name + " (" + p.product_id + ")") }],
      layout: { yaxis: { autorange: "reversed", automargin: true }, xaxis: { title: { text: "revenue" } } },
    } : null),
    Dash.chart("categories", "/api/metrics/by-category", (rows) => rows.length ? {
      data: [{ type: "pie", hole: 0.45, labels: rows.map((c) => c.category), values: rows.map((c) => c.revenue), sort: false }],
      layout: { legend: { orientation: "v" } },
    } : null),
    Dash.chart("realtime", "/api/metrics/realtime?window_seconds=300", (r) => {
      document.getElementById("realtime-tiles").replaceChildren(
        Dash.tile("events", Dash.num(r.events)),
        Dash.tile("active users", Dash.num(r.active_users)),
        Dash.tile("revenue", Dash.num(r.revenue, 2)),
      );
      return { data: [{ type: "bar", x: REALTIME_FIELDS, y: REALTIME_FIELDS.map((f) => r[f]) }], layout: {} };
    }),
  ]);
}

const run = Dash.every(refresh);
document.getElementById("granularity").addEventListener("change", run);
