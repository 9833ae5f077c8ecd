// Subscriptions page: MRR and its movement, churn, active subscriptions by plan, payments by method,
// new users per day; every series is a field of a /v1/subscriptions read endpoint's answer.
"use strict";

const SUBSCRIPTION_API = {
  mrr: "/v1/subscriptions/metrics/mrr",
  plans: "/v1/subscriptions/metrics/active-by-plan",
  payments: "/v1/subscriptions/metrics/payments-by-method",
  users: "/v1/subscriptions/metrics/new-users",
};
// MRR movement: field, legend, sign (contraction and churn drawn below zero).
const MOVEMENT = [
  ["new_mrr", "new", 1],
  ["expansion_mrr", "expansion", 1],
  ["contraction_mrr", "contraction", -1],
  ["churned_mrr", "churn", -1],
];

const n = (value) => Number(value);
const MONTH_AXIS = { type: "date", tickformat: "%b %Y", dtick: "M1" };

// Churn of month i: churned MRR over the MRR at the end of month i-1, in percent (none for the first).
function churnRates(months) {
  const rows = [];
  for (let i = 1; i < months.length; i += 1) {
    const previous = n(months[i - 1].mrr);
    if (previous > 0) rows.push({ month: months[i].month, pct: (n(months[i].churned_mrr) / previous) * 100 });
  }
  return rows;
}

function summaryTiles(mrr, plans, payments, users) {
  const box = document.getElementById("summary");
  if (!mrr.ok) {
    box.replaceChildren(Dash.tile("Subscriptions", Dash.describe(mrr)[1]));
    return;
  }
  const tiles = [];
  const last = mrr.body[mrr.body.length - 1];
  if (last) tiles.push(Dash.tile("MRR now", Dash.num(last.mrr, 2)));
  if (plans.ok) tiles.push(Dash.tile("active subscriptions", Dash.num(plans.body.reduce((s, p) => s + n(p.active_subscriptions), 0))));
  const churn = churnRates(mrr.body);
  if (churn.length) tiles.push(Dash.tile("churn last month %", Dash.num(churn[churn.length - 1].pct, 2)));
  if (payments.ok && payments.body.length) {
    const total = payments.body.reduce((s, p) => s + n(p.payments), 0);
    const ok = payments.body.reduce((s, p) => s + n(p.succeeded), 0);
    tiles.push(Dash.tile("payments approved %", Dash.num((ok / total) * 100, 2)));
  }
  if (users.ok && users.body.length) tiles.push(Dash.tile("users", Dash.num(users.body[users.body.length - 1].total_users)));
  box.replaceChildren(...tiles);
}

async function refresh() {
  const [mrr, plans, payments, users] = await Promise.all(Object.values(SUBSCRIPTION_API).map((url) => Dash.get(url)));
  await Promise.all([
    Dash.draw("mrr", SUBSCRIPTION_API.mrr, mrr, (months) => months.length ? {
      data: [
        ...MOVEMENT.map(([field, name, sign]) => ({
          type: "bar", name, x: months.map((m) => m.month), y: months.map((m) => sign * n(m[field])),
        })),
        { type: "scatter", mode: "lines+markers", name: "MRR", x: months.map((m) => m.month), y: months.map((m) => n(m.mrr)) },
      ],
      layout: { barmode: "relative", xaxis: MONTH_AXIS, yaxis: { title: { text: "monthly recurring revenue" } } },
    } : null, "No subscription history yet."),
    Dash.draw("churn", SUBSCRIPTION_API.mrr, mrr, (months) => {
      const rows = churnRates(months);
      return rows.length ? {
        data: [{ type: "scatter", mode: "lines+markers", name: "churn %", x: rows.map((r) => r.month), y: rows.map((r) => r.pct) }],
        layout: { xaxis: MONTH_AXIS, yaxis: { title: { text: "% of previous MRR" }, rangemode: "tozero" } },
      } : null;
    }, "Churn needs two months of history."),
    Dash.draw("active-by-plan", SUBSCRIPTION_API.plans, plans, (rows) => rows.length ? {
      data: [{
        type: "bar", x: rows.map((p) => p.plano), y: rows.map((p) => n(p.active_subscriptions)),
        text: rows.map((p) => "MRR " + Dash.num(p.mrr, 2)), hoverinfo: "x+y+text",
      }],
      layout: { yaxis: { title: { text: "active subscriptions" } } },
    } : null, "No active subscription."),
    Dash.draw("payments-by-method", SUBSCRIPTION_API.payments, payments, (rows) => rows.length ? {
      data: [
        { type: "bar", name: "approved", x: rows.map((p) => p.metodo), y: rows.map((p) => n(p.succeeded)) },
        { type: "bar", name: "declined", x: rows.map((p) => p.metodo), y: rows.map((p) => n(p.failed)),
          text: rows.map((p) => Dash.num(p.failure_rate_pct, 2) + " %"), textposition: "outside" },
      ],
      layout: { barmode: "stack", yaxis: { title: { text: "payments" } } },
    } : null, "No payment recorded."),
    Dash.draw("new-users", SUBSCRIPTION_API.users, users, (days) => days.length ? {
      data: [
        { type: "bar", name: "new users", x: days.map((d) => d.signup_date), y: days.map((d) => n(d.new_users)) },
        { type: "scatter", mode: "lines", name: "total", yaxis: "y2", x: days.map((d) => d.signup_date), y: days.map((d) => n(d.total_users)) },
      ],
      layout: {
        yaxis: { title: { text: "new users" } },
        yaxis2: { title: { text: "total" }, overlaying: "y", side: "right", rangemode: "tozero" },
        margin: { l: 60, r: 70, t: 10, b: 50 },
      },
    } : null, "No user yet."),
  ]);
  summaryTiles(mrr, plans, payments, users);
}

Dash.every(refresh);
