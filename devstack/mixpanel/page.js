// The local Mixpanel's page (served at / by devstack.mixpanel): polls /api/* and draws with textContent only.
"use strict";
const REFRESH_MS = 3000;
const PALETTE = ["#5b4fe9", "#0f9d8a", "#e0803a", "#c2418c", "#3a86d9", "#8a9a1f", "#7d5ba6", "#d14b4b"];
const SVG_NS = "http://www.w3.org/2000/svg";
// The page's legend (page.html) says the same in full.
const STAT_MEANINGS = {
  events: "Distinct events, as Mixpanel counts them: copies with the same event, distinct_id, time and $insert_id count once",
  ingested: "Every event /import accepted, retried and redelivered copies included",
};
const openDetails = new Set();
let paused = false, timer = null;

// Build DOM with textContent only: event properties come from webhooks and are never trusted as HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const fmtTime = ms => new Date(ms).toISOString().replace("T", " ").slice(0, 19);
function fmtMoney(amount, currency) {
  try { return new Intl.NumberFormat("en", {style: "currency", currency}).format(amount); }
  catch (e) { return amount.toFixed(2) + " " + currency; }
}
const fmtValue = v => (typeof v === "string" ? v : JSON.stringify(v));
// Every /api request names the project shown (the first one when none is chosen).
let project = new URLSearchParams(location.search).get("project") || "";
async function getJSON(url) {
  const full = project ? url + (url.includes("?") ? "&" : "?") + "project=" + encodeURIComponent(project) : url;
  const r = await fetch(full, {cache: "no-store"}); return r.json();
}

function renderStats(s) {
  document.getElementById("project").textContent = "project " + s.project_id;
  const choice = document.getElementById("project-choice");
  choice.replaceChildren(...s.projects.map(id => el("option", {value: id, text: "project " + id})));
  choice.value = s.project_id; choice.hidden = s.projects.length < 2;
  const faults = Object.values(s.faults_served).reduce((a, b) => a + b, 0);
  const items = [["Events", s.events, STAT_MEANINGS.events], ["Ingested", s.raw_events, STAT_MEANINGS.ingested],
                 ["Profiles", s.profiles], ["Companies", s.groups], ["Requests", s.requests], ["Faults served", faults],
                 ["Spec violations", s.spec_violations]];
  const box = document.getElementById("stats");
  box.replaceChildren(...items.map(([label, n, meaning]) =>
    el("div", {class: "stat" + (label === "Spec violations" && n > 0 ? " bad" : ""), title: meaning || label,
               "data-stat": label}, el("b", {text: n}), label)));
}

function renderEvents(data) {
  const select = document.getElementById("filter-name");
  const chosen = select.value;
  const names = data.names.includes(chosen) || !chosen ? data.names : [...data.names, chosen];
  select.replaceChildren(el("option", {value: "", text: "All events"}),
                         ...names.map(n => el("option", {value: n, text: n})));
  select.value = chosen;
  document.getElementById("events-count").textContent =
    (data.matched === data.total ? `${data.total}` : `${data.matched} of ${data.total}`) + " (newest first, by event time)";
  const body = document.querySelector("#events tbody");
  if (!data.events.length) {
    body.replaceChildren(el("tr", {}, el("td", {colspan: 5, class: "empty", text: "No events yet."})));
    return;
  }
  body.replaceChildren(...data.events.map(e => {
    const p = e.properties, key = String(e.seq);
    const value = p[data.amount_property], cur = p[data.currency_property];
    const refund = data.refund_events.includes(e.event);
    const amount = typeof value === "number" && typeof cur === "string" && cur
      ? fmtMoney(refund ? -Math.abs(value) : value, cur) : "";
    const details = el("details", {}, el("summary", {text: Object.keys(p).length + " properties"}),
                       el("pre", {class: "mono", text: JSON.stringify(p, null, 2)}));
    details.open = openDetails.has(key);
    details.addEventListener("toggle", () => details.open ? openDetails.add(key) : openDetails.delete(key));
    return el("tr", {"data-event": e.event, "data-user": p.distinct_id, "data-insert-id": p["$insert_id"]},
      el("td", {class: "mono", text: fmtTime(e.time_ms)}),
      el("td", {}, el("span", {class: "pill", text: e.event})),
      el("td", {class: "mono", text: p.distinct_id === "" ? "(no user)" : p.distinct_id}),
      el("td", {class: "money" + (refund ? " neg" : ""), text: amount}),
      el("td", {}, details));
  }));
}

function renderRevenue(data) {
  const box = document.getElementById("charts");
  if (!data.rows.length) { box.replaceChildren(el("div", {class: "empty", text: "No revenue events yet."})); return; }
  const days = [...new Set(data.rows.map(r => r.day))].sort();
  box.replaceChildren(...data.currencies.map((cur, i) => chart(cur, PALETTE[i % PALETTE.length], days,
                                                              data.rows.filter(r => r.currency === cur))));
}

// One small chart per currency: amounts in different currencies never share an axis.
function chart(currency, color, days, rows) {
  const W = 480, H = 180, L = 64, R = 10, T = 12, B = 28;
  const byDay = Object.fromEntries(rows.map(r => [r.day, r]));
  const top = Math.max(1e-9, ...rows.map(r => r.gross));
  const bottom = Math.max(0, ...rows.map(r => r.refunds));
  const span = top + bottom, plotH = H - T - B;
  const y = v => T + (top - v) / span * plotH;
  const slot = (W - L - R) / days.length, bw = Math.max(4, Math.min(38, slot * 0.6));
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "data-currency": currency,
                           "aria-label": `Revenue per day in ${currency}`});
  for (const v of [top, top / 2, 0, -bottom].filter((v, i, a) => a.indexOf(v) === i)) {
    root.append(svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: v === 0 ? "#9aa1b3" : "#eceef4"}));
    root.append(svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385"},
                    fmtMoney(v, currency)));
  }
  days.forEach((day, i) => {
    const x = L + i * slot + (slot - bw) / 2, r = byDay[day];
    if (r && r.gross > 0) {
      const bar = svg("rect", {x, y: y(r.gross), width: bw, height: y(0) - y(r.gross), rx: 2, fill: color,
                               class: "bar", "data-currency": currency, "data-day": day});
      bar.append(svg("title", {}, `${day}: gross ${fmtMoney(r.gross, currency)}, refunds ${fmtMoney(r.refunds, currency)}, net ${fmtMoney(r.net, currency)}`));
      root.append(bar);
    }
    if (r && r.refunds > 0) {
      const bar = svg("rect", {x, y: y(0), width: bw, height: y(-r.refunds) - y(0), rx: 2, fill: "#e2685f",
                               class: "bar refund", "data-currency": currency, "data-day": day});
      bar.append(svg("title", {}, `${day}: refunds ${fmtMoney(r.refunds, currency)}`));
      root.append(bar);
    }
    if (days.length <= 14 || i % Math.ceil(days.length / 14) === 0)
      root.append(svg("text", {x: x + bw / 2, y: H - 8, "text-anchor": "middle", "font-size": 10, fill: "#6b7385"}, day.slice(5)));
  });
  const net = rows.reduce((a, r) => a + r.net, 0);
  return el("div", {class: "chart"},
    el("h3", {}, el("span", {text: currency}), el("span", {class: "money" + (net < 0 ? " neg" : ""), text: "net " + fmtMoney(net, currency)})),
    root);
}

// MRR over time (a line) and the day's movements by type (bars above and below zero), one pair per currency.
const MOVEMENT_COLORS = {New: "#178a52", Expansion: "#3a86d9", Reactivation: "#0f9d8a", Contraction: "#e0803a", Churn: "#d14b4b"};
function renderMrr(data) {
  const box = document.getElementById("mrr-charts");
  if (!data.currencies.length) { box.replaceChildren(el("div", {class: "empty", text: "No subscription events with MRR yet."})); return; }
  box.replaceChildren(...data.currencies.flatMap(cur => [
    mrrLine(cur, data.mrr.filter(r => r.currency === cur)),
    movementBars(cur, data.movements.filter(r => r.currency === cur))]));
}

function mrrLine(currency, rows) {
  const W = 480, H = 180, L = 64, R = 10, T = 12, B = 28;
  const top = Math.max(1e-9, ...rows.map(r => r.mrr));
  const x = i => L + (rows.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (rows.length - 1));
  const y = v => T + (top - v) / top * (H - T - B);
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "data-mrr-currency": currency, class: "mrr-line",
                           "aria-label": `MRR over time in ${currency}`});
  for (const v of [top, top / 2, 0]) {
    root.append(svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: v === 0 ? "#9aa1b3" : "#eceef4"}));
    root.append(svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385"}, fmtMoney(v, currency)));
  }
  root.append(svg("polyline", {points: rows.map((r, i) => `${x(i)},${y(r.mrr)}`).join(" "), fill: "none",
                               stroke: "#5b4fe9", "stroke-width": 2}));
  rows.forEach((r, i) => {
    const dot = svg("circle", {cx: x(i), cy: y(r.mrr), r: 3, fill: "#5b4fe9", class: "mrr-point", "data-day": r.day});
    dot.append(svg("title", {}, `${r.day}: MRR ${fmtMoney(r.mrr, currency)}`));
    root.append(dot);
    if (rows.length <= 14 || i % Math.ceil(rows.length / 14) === 0)
      root.append(svg("text", {x: x(i), y: H - 8, "text-anchor": "middle", "font-size": 10, fill: "#6b7385"}, r.day.slice(5)));
  });
  const last = rows.length ? rows[rows.length - 1].mrr : 0;
  return el("div", {class: "chart"}, el("h3", {}, el("span", {text: `MRR ${currency}`}),
            el("span", {class: "money", text: fmtMoney(last, currency)})), root);
}

function movementBars(currency, rows) {
  const W = 480, H = 180, L = 64, R = 10, T = 12, B = 28;
  const days = [...new Set(rows.map(r => r.day))].sort();
  const up = d => rows.filter(r => r.day === d && r.change > 0).reduce((a, r) => a + r.change, 0);
  const down = d => rows.filter(r => r.day === d && r.change < 0).reduce((a, r) => a - r.change, 0);
  const top = Math.max(1e-9, ...days.map(up)), bottom = Math.max(0, ...days.map(down)), span = top + bottom;
  const y = v => T + (top - v) / span * (H - T - B);
  const slot = (W - L - R) / Math.max(1, days.length), bw = Math.max(4, Math.min(38, slot * 0.6));
  const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "data-mrr-currency": currency, class: "mrr-movements",
                           "aria-label": `MRR movements by type in ${currency}`});
  for (const v of [top, 0, -bottom].filter((v, i, a) => a.indexOf(v) === i)) {
    root.append(svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: v === 0 ? "#9aa1b3" : "#eceef4"}));
    root.append(svg("text", {x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7385"}, fmtMoney(v, currency)));
  }
  days.forEach((day, i) => {
    const x = L + i * slot + (slot - bw) / 2;
    let above = 0, below = 0;
    for (const r of rows.filter(r => r.day === day)) {
      const from = r.change >= 0 ? above : -below, to = from + r.change;
      if (r.change >= 0) above = to; else below = -to;
      const bar = svg("rect", {x, y: y(Math.max(from, to)), width: bw, height: Math.abs(y(from) - y(to)), rx: 2,
                               fill: MOVEMENT_COLORS[r.movement] || "#8a9a1f", class: "movement",
                               "data-movement": r.movement, "data-day": day});
      bar.append(svg("title", {}, `${day}: ${r.movement} ${fmtMoney(r.change, currency)}`));
      root.append(bar);
    }
    if (days.length <= 14 || i % Math.ceil(days.length / 14) === 0)
      root.append(svg("text", {x: x + bw / 2, y: H - 8, "text-anchor": "middle", "font-size": 10, fill: "#6b7385"}, day.slice(5)));
  });
  const legend = el("div", {class: "legend"}, ...Object.entries(MOVEMENT_COLORS).map(([name, color]) =>
    el("span", {}, el("i", {style: `background:${color}`}), name)));
  const net = rows.reduce((a, r) => a + r.change, 0);
  return el("div", {class: "chart"}, el("h3", {}, el("span", {text: `Movements ${currency}`}),
            el("span", {class: "money" + (net < 0 ? " neg" : ""), text: "net new " + fmtMoney(net, currency)})), root, legend);
}

function renderProfiles(data) {
  document.getElementById("profiles-count").textContent = data.profiles.length;
  const box = document.getElementById("profiles");
  if (!data.profiles.length) { box.replaceChildren(el("div", {class: "empty", text: "No profiles yet."})); return; }
  box.replaceChildren(...data.profiles.map(p => {
    const dl = el("dl");
    for (const [k, v] of Object.entries(p.properties)) dl.append(el("dt", {text: k}), el("dd", {text: fmtValue(v)}));
    const seen = p.last_seen ? "last seen " + fmtTime(p.last_seen * 1000) : "last seen not updated ($ignore_time)";
    return el("div", {class: "profile", "data-distinct-id": p.distinct_id},
              el("h3", {class: "mono", text: p.distinct_id}), dl, el("div", {class: "muted seen", text: seen}));
  }));
}

function renderGroups(data) {
  document.getElementById("groups-count").textContent = data.groups.length;
  const box = document.getElementById("groups");
  if (!data.groups.length) { box.replaceChildren(el("div", {class: "empty", text: "No company profiles yet."})); return; }
  box.replaceChildren(...data.groups.map(g => {
    const dl = el("dl");
    for (const [k, v] of Object.entries(g.properties)) dl.append(el("dt", {text: k}), el("dd", {text: fmtValue(v)}));
    return el("div", {class: "group", "data-group-key": g.group_key, "data-group-id": g.group_id},
              el("h3", {class: "mono", text: g.group_key + " = " + g.group_id}), dl,
              el("div", {class: "muted seen", text: "updated " + fmtTime(g.updated_at * 1000)}));
  }));
}

function renderDeadLetters(data) {
  const box = document.getElementById("dead-letters"), count = document.getElementById("dead-letters-count");
  if (!data.connected) { count.textContent = ""; box.replaceChildren(el("div", {class: "empty", text: "not connected"})); return; }
  if (data.error) { count.textContent = ""; box.replaceChildren(el("div", {class: "notice", text: "Could not read the queue: " + data.error})); return; }
  count.textContent = data.items.length;
  if (!data.items.length) { box.replaceChildren(el("div", {class: "empty", text: "The dead-letter queue is empty."})); return; }
  box.replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, el("th", {text: "Reason"}), el("th", {text: "Message"}))),
    el("tbody", {}, ...data.items.map(item => {
      const reason = fmtValue(item.reason || item.error || item.failure || "(no reason given)");
      const detail = item.detail ? fmtValue(item.detail) : "";
      const about = [item.provider, item.event_type].filter(Boolean).join(" · ");
      const label = item.event_id || item.id || item.message_id || "message";
      return el("tr", {class: "dead-letter"},
        el("td", {}, el("div", {text: reason}), detail ? el("div", {class: "muted", text: detail}) : null),
        el("td", {}, about ? el("div", {class: "muted", text: about}) : null,
           el("details", {}, el("summary", {text: label}),
              el("pre", {class: "mono", text: JSON.stringify(item, null, 2)}))));
    }))));
}

function renderRequests(data) {
  document.getElementById("requests-count").textContent = data.requests.length ? "last " + data.requests.length : "";
  const v = document.getElementById("violations");
  v.replaceChildren(...data.violations.slice(-10).map(x =>
    el("div", {class: "violation mono", text: `spec: request #${x.request_id} ${x.operation} ${x.where}: ${x.message}`})));
  const body = document.querySelector("#requests tbody");
  body.replaceChildren(...data.requests.map(r => el("tr", {},
    el("td", {class: "mono", text: r.id}), el("td", {class: "mono", text: r.path}),
    el("td", {class: "status-" + String(r.status || 0)[0], text: r.status === null ? "closed" : r.status}),
    el("td", {text: r.records === null ? "" : r.records}), el("td", {text: r.fault || ""}))));
}

// Stripe's payments against the ledger's and Mixpanel's (`revenue-webhooks reconcile --json`), as last run.
function renderReconcile(data) {
  const box = document.getElementById("reconcile"), when = document.getElementById("reconcile-when");
  document.getElementById("reconcile-run").hidden = !data.connected;
  if (!data.report) {
    when.textContent = "";
    box.replaceChildren(el("div", {class: "empty", text: data.connected
      ? "Not run yet: Run reconcile compares Stripe's payments with the ledger's and Mixpanel's."
      : "Not connected: make reconcile prints the same report."}));
    return;
  }
  const r = data.report;
  when.textContent = "run " + fmtTime(data.at * 1000);
  if (r.error) { box.replaceChildren(el("div", {class: "notice", text: "Reconcile failed: " + r.error})); return; }
  const verdict = r.agree
    ? el("div", {class: "verdict ok", text: `All agree: ${r.since.slice(0, 10)} to ${r.until.slice(0, 10)}, no difference per currency or per object.`})
    : el("div", {class: "verdict bad", text: `${r.differences.length} difference(s), ${r.since.slice(0, 10)} to ${r.until.slice(0, 10)}.`});
  const rows = [];
  for (const [cur, sources] of Object.entries(r.currencies)) {
    for (const [source, t] of Object.entries(sources)) {
      if (source === "ledger" && !r.ledger_checked) continue;
      rows.push(el("tr", {"data-currency": cur, "data-source": source},
        el("td", {text: source === "stripe" ? cur : ""}), el("td", {text: source}),
        el("td", {class: "money", text: t.gross}), el("td", {class: "money", text: t.refunds}),
        el("td", {class: "money", text: t.net}), el("td", {text: t.payments}), el("td", {text: t.refund_count})));
    }
  }
  const totals = el("table", {id: "reconcile-totals"},
    el("thead", {}, el("tr", {}, ...["Currency", "Source", "Gross", "Refunds", "Net", "Payments", "Refunds #"].map(h => el("th", {text: h})))),
    el("tbody", {}, ...rows));
  const diffs = r.differences.length ? el("table", {id: "reconcile-differences"},
    el("thead", {}, el("tr", {}, ...["Object", "Currency", "Stripe", "Ledger", "Mixpanel", "Problem"].map(h => el("th", {text: h})))),
    el("tbody", {}, ...r.differences.map(d => el("tr", {class: "difference"},
      el("td", {class: "mono", text: d.object_id}), el("td", {text: d.currency}),
      el("td", {class: "money", text: d.stripe ?? "-"}), el("td", {class: "money", text: d.ledger ?? "-"}),
      el("td", {class: "money", text: d.mixpanel ?? "-"}), el("td", {text: d.problem}))))) : null;
  const repair = r.repair ? el("div", {class: "mono", text: "Repair: " + r.repair}) : null;
  box.replaceChildren(verdict, totals, diffs, repair);
}

async function refresh() {
  const name = document.getElementById("filter-name").value, user = document.getElementById("filter-user").value;
  const q = new URLSearchParams({name, user});
  try {
    const [summary, events, revenue, mrr, profiles, groups, dead, requests, reconcile] = await Promise.all([
      getJSON("/api/summary"), getJSON("/api/events?" + q), getJSON("/api/revenue"), getJSON("/api/mrr"),
      getJSON("/api/profiles"), getJSON("/api/groups"), getJSON("/api/dead-letters"), getJSON("/api/requests"),
      getJSON("/api/reconcile")]);
    renderStats(summary); renderEvents(events); renderRevenue(revenue); renderMrr(mrr); renderProfiles(profiles);
    renderGroups(groups); renderDeadLetters(dead); renderRequests(requests); renderReconcile(reconcile);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  } catch (e) {
    document.getElementById("updated").textContent = "server unreachable, retrying…";
  }
  if (project) q.set("project", project);
  history.replaceState(null, "", "?" + new URLSearchParams([...q].filter(([, v]) => v)));
}
function schedule() { clearTimeout(timer); if (!paused) timer = setTimeout(async () => { await refresh(); schedule(); }, REFRESH_MS); }

const params = new URLSearchParams(location.search);
const nameBox = document.getElementById("filter-name"), userBox = document.getElementById("filter-user");
if (params.get("name")) nameBox.append(el("option", {value: params.get("name"), text: params.get("name")}));
nameBox.value = params.get("name") || ""; userBox.value = params.get("user") || "";
let typing = null;
nameBox.addEventListener("change", () => { refresh(); schedule(); });
document.getElementById("project-choice").addEventListener("change", e => { project = e.target.value; refresh(); schedule(); });
userBox.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { refresh(); schedule(); }, 200); });
document.getElementById("reconcile-run").addEventListener("click", async e => {
  e.target.disabled = true; e.target.textContent = "Reconciling…";
  try { renderReconcile(await (await fetch("/api/reconcile", {method: "POST"})).json()); }
  finally { e.target.disabled = false; e.target.textContent = "Run reconcile"; }
});
document.getElementById("pause").addEventListener("click", e => {
  paused = !paused; e.target.textContent = paused ? "Resume" : "Pause"; if (!paused) { refresh(); } schedule();
});
refresh().then(schedule);
