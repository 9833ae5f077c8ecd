// Shared dashboard helpers: fetch the JSON API, draw Plotly charts, show "not built yet" states.
// Every value reaches the page through textContent or Plotly, never as HTML.
"use strict";

const Dash = {
  refreshSeconds: Number(document.body.dataset.refresh || 30),
  dagsterUi: document.body.dataset.dagsterUi || "",

  // With API_AUTH on, data routes need a key: the page keeps the one the user entered in this
  // browser (localStorage) and sends it as X-API-Key; it is never part of a URL.
  apiKey() {
    try { return window.localStorage.getItem("afluente_api_key") || ""; } catch (err) { return ""; }
  },

  askForKey() {
    const key = window.prompt("This API needs a key with the viewer role (X-API-Key). Key:");
    if (key) {
      window.localStorage.setItem("afluente_api_key", key.trim());
      window.location.reload();
    }
  },

  // GET a JSON endpoint: {ok, status, body}; status 0 when the API cannot be reached.
  async get(url) {
    try {
      const headers = { Accept: "application/json" };
      const key = Dash.apiKey();
      if (key) headers["X-API-Key"] = key;
      const response = await fetch(url, { headers });
      let body = null;
      try { body = await response.json(); } catch (err) { body = null; }
      return { ok: response.ok, status: response.status, body };
    } catch (err) {
      return { ok: false, status: 0, body: { detail: String(err) } };
    }
  },

  // Human message for a failed answer: 503 = not built yet / service absent, 404 = no rows.
  describe(res) {
    const detail = res.body && typeof res.body.detail === "string" ? res.body.detail : "";
    if (res.status === 503) {
      if (/unavailable/i.test(detail)) return ["unavailable", "Not available: " + detail];
      return ["not-built", "Not built yet: " + (detail || "the pipeline has not produced this data")];
    }
    if (res.status === 401 || res.status === 403) {
      Dash.showKeyButton();
      return ["forbidden", "Needs an API key with the viewer role: " + (detail || "access refused")];
    }
    if (res.status === 404) return ["empty", "No data: " + (detail || "nothing matches")];
    if (res.status === 0) return ["unreachable", "The API cannot be reached: " + detail];
    return ["error", "Error " + res.status + (detail ? ": " + detail : "")];
  },

  showKeyButton() {
    const button = document.getElementById("api-key");
    if (button) button.hidden = false;
  },

  // Show a notice in place of the element's content (the element is hidden, not removed).
  notice(el, state, message) {
    const card = el.closest(".card");
    const box = card ? card.querySelector(".notice") : null;
    el.hidden = true;
    el.dataset.state = state;
    if (box) { box.hidden = false; box.className = "notice " + state; box.textContent = message; }
  },

  clearNotice(el) {
    const card = el.closest(".card");
    const box = card ? card.querySelector(".notice") : null;
    if (box) { box.hidden = true; box.textContent = ""; }
    el.hidden = false;
    el.dataset.state = "ok";
  },

  layout(extra) {
    return Object.assign({
      margin: { l: 60, r: 20, t: 10, b: 50 },
      height: 320,
      font: { family: "system-ui, sans-serif", size: 12 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      legend: { orientation: "h", y: -0.2 },
    }, extra || {});
  },

  // Fetch url and draw build(body) -> {data, layout} (or null when there is nothing to draw).
  async chart(id, url, build, emptyMessage) {
    return Dash.draw(id, url, await Dash.get(url), build, emptyMessage);
  },

  // Draw build(body) of an answer already fetched from url (several charts of one endpoint fetch once).
  async draw(id, url, res, build, emptyMessage) {
    const el = document.getElementById(id);
    if (!res.ok) {
      const [state, message] = Dash.describe(res);
      Dash.notice(el, state, message);
      return res;
    }
    const figure = build(res.body);
    if (!figure) {
      Dash.notice(el, "empty", emptyMessage || "No data yet.");
      return res;
    }
    Dash.clearNotice(el);
    await Plotly.react(el, figure.data, Dash.layout(figure.layout), { displaylogo: false, responsive: true });
    el.dataset.source = url;
    return res;
  },

  tile(label, value) {
    const tile = document.createElement("div");
    tile.className = "tile";
    const v = document.createElement("strong");
    v.textContent = value;
    const l = document.createElement("span");
    l.textContent = label;
    tile.append(v, l);
    return tile;
  },

  // A table of rows: columns = [[header, row => text], ...].
  table(el, rows, columns) {
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const [header] of columns) {
      const th = document.createElement("th");
      th.textContent = header;
      head.append(th);
    }
    const body = table.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const [, cell] of columns) {
        const value = cell(row);
        const td = tr.insertCell();
        if (value instanceof Node) td.append(value); else td.textContent = value == null ? "" : String(value);
      }
    }
    el.replaceChildren(table);
  },

  link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  },

  badge(text) {
    const span = document.createElement("span");
    span.className = "badge " + text;
    span.textContent = text;
    return span;
  },

  assetUrl(assetKey) {
    return Dash.dagsterUi + "/assets/" + assetKey.split("/").map(encodeURIComponent).join("/");
  },

  num(value, digits) {
    if (value == null) return "–";
    return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits == null ? 0 : digits });
  },

  // Run refresh now and every DASHBOARD_REFRESH_SECONDS; the header says when data was last fetched.
  every(refresh) {
    const run = async () => {
      await refresh();
      document.getElementById("updated-at").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
    };
    run();
    setInterval(run, Dash.refreshSeconds * 1000);
    return run;
  },
};

document.getElementById("api-key")?.addEventListener("click", () => Dash.askForKey());
