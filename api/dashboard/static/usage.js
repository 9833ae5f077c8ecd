// AI-usage page: top users, daily trend, alerts and prompt search, all from the insight indices.
"use strict";

const banner = document.getElementById("engine-banner");

function showEngineState(res) {
  const detail = res.body && typeof res.body.detail === "string" ? res.body.detail : "";
  if (res.status === 503 && /search engine unavailable/i.test(detail)) {
    banner.hidden = false;
    banner.textContent = "Search engine not available: the usage insights are served from OpenSearch / " +
      "Elasticsearch (SEARCH_URL), which does not answer. The marts are built; the insight indices need the engine.";
  } else {
    banner.hidden = true;
  }
}

// "<em>word</em>" highlight fragments as text with <mark> elements (never parsed as HTML).
function highlighted(fragment) {
  const span = document.createElement("span");
  fragment.split(/(<em>.*?<\/em>)/).forEach((part) => {
    if (part.startsWith("<em>")) {
      const mark = document.createElement("mark");
      mark.textContent = part.slice(4, -5);
      span.append(mark);
    } else {
      span.append(document.createTextNode(part));
    }
  });
  return span;
}

async function alerts() {
  const el = document.getElementById("alerts");
  const res = await Dash.get("/insights/alerts?limit=50");
  if (!res.ok) { Dash.notice(el, ...Dash.describe(res)); return; }
  if (!res.body.alerts.length) { Dash.notice(el, "empty", "No alerts."); return; }
  Dash.clearNotice(el);
  Dash.table(el, res.body.alerts, [
    ["day", (a) => a.usage_date], ["severity", (a) => Dash.badge(a.severity)], ["type", (a) => a.alert_type],
    ["user", (a) => a.user_id], ["team", (a) => a.team], ["tokens", (a) => Dash.num(a.total_tokens)],
    ["message", (a) => a.message],
  ]);
  el.dataset.source = "/insights/alerts?limit=50";
}

async function refresh() {
  const [top] = await Promise.all([
    Dash.chart("top-users", "/insights/top-users?limit=10", (r) => r.users.length ? {
      data: [{ type: "bar", x: r.users.map((u) => u.user_id), y: r.users.map((u) => u.total_tokens) }],
      layout: { yaxis: { title: { text: "tokens" } } },
    } : null),
    Dash.chart("daily", "/insights/daily", (r) => r.days.length ? {
      data: [{ type: "scatter", mode: "lines+markers", name: "tokens", x: r.days.map((d) => d.date), y: r.days.map((d) => d.total_tokens) }],
      layout: { yaxis: { title: { text: "tokens" } } },
    } : null),
    alerts(),
  ]);
  showEngineState(top);
}

document.getElementById("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const el = document.getElementById("search-results");
  const url = "/insights/search?" + new URLSearchParams({ q: document.getElementById("q").value, limit: "20" });
  const res = await Dash.get(url);
  if (!res.ok) { Dash.notice(el, ...Dash.describe(res)); return; }
  if (!res.body.hits.length) { Dash.notice(el, "empty", "No prompt matches."); return; }
  Dash.clearNotice(el);
  Dash.table(el, res.body.hits, [
    ["score", (h) => Dash.num(h.score, 2)], ["user", (h) => h.user_id], ["IDE", (h) => h.ide],
    ["when", (h) => h.created_at],
    ["match", (h) => highlighted(((h.highlights.prompt || h.highlights.response || [h.prompt || ""])[0]))],
  ]);
  el.dataset.source = url;
});

Dash.every(refresh);
