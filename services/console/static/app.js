// The operations-centre console. Everything comes from the gateway's JSON API and one
// Server-Sent-Events stream per view; nothing here computes a score.
"use strict";

const HEARTBEAT_MS = 2000;
const STALE_AFTER_MS = 3 * HEARTBEAT_MS + 1000;  // no word from the server for this long: offline
const MAIN_TYPES = ["document.sent", "document.received", "document.signed", "dossier.received", "dossier.resolved"];
const TYPE_COLOURS = {"document.sent": "#0b5cad", "document.received": "#5b9bd5", "document.signed": "#7b3fa0",
                      "dossier.received": "#1c8a4a", "dossier.resolved": "#c98500"};
const RATE_COLOURS = ["#0b5cad", "#7b3fa0", "#5b9bd5", "#1c8a4a", "#c98500", "#c62828"];
const LOCAL_TZ = "Asia/Ho_Chi_Minh";


const state = {
  lang: localStorage.getItem("dti.lang") || "vi",
  strings: {}, meta: null, user: null,
  cohort: localStorage.getItem("dti.cohort") || "department",
  period: localStorage.getItem("dti.period") || "month",
  source: null, lastLiveAt: 0, reachable: null, frozenAt: 0,
  data: {},  // the last ranking / activity / score / trend / explain received, re-rendered on language switch
  charts: [],
};

// ---------- helpers ----------
function t(key, vars = {}) {
  const table = state.strings[state.lang] || {};
  let text = table[key] ?? (state.strings.en || {})[key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replace(`{${name}}`, value);
  return text;
}

function has(key) {
  return key in (state.strings[state.lang] || {}) || key in (state.strings.en || {});
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const numberFormat = () => new Intl.NumberFormat(state.lang === "vi" ? "vi-VN" : "en-GB");
const fmtInt = (n) => numberFormat().format(n);
const fmtPct = (r, digits = 1) => r === null || r === undefined ? "—" : `${(r * 100).toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB", {maximumFractionDigits: digits})} %`;
const fmtNum = (x, digits = 2) => x === null || x === undefined ? "—" : x.toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB", {minimumFractionDigits: digits, maximumFractionDigits: digits});
const fmtPoints = (x) => x === null || x === undefined ? "—" : x.toLocaleString(state.lang === "vi" ? "vi-VN" : "en-GB", {maximumFractionDigits: 2});
// dd/mm/yyyy hh:mm in the province's time, whatever the browser's locale puts first
const fmtDateTime = (iso) => {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {timeZone: LOCAL_TZ, day: "2-digit", month: "2-digit",
    year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).formatToParts(new Date(iso)).map((p) => [p.type, p.value]));
  return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}`;
};
const fmtTime = (ms) => new Date(ms).toLocaleTimeString(state.lang === "vi" ? "vi-VN" : "en-GB", {timeZone: LOCAL_TZ});

async function api(path, options = {}) {
  const response = await fetch(path, {credentials: "same-origin", ...options,
    headers: {"Accept": "application/json", ...(options.headers || {})}});
  if (response.status === 401) { showLogin(); throw new Error("unauthorized"); }
  const body = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(body?.detail || `${response.status}`);
  return body;
}

// A rate is coloured with the bands of the rules that score it (the rules file's [bands]).
function bandOf(fraction) {
  if (fraction === null || fraction === undefined) return "";
  const rules = state.meta?.rules;
  const bands = rules?.versions.find((v) => v.version === rules.default_version);
  if (!bands) return "";
  return fraction < bands.critical_below ? "critical" : fraction < bands.warning_below ? "warning" : "";
}

// ---------- language ----------
function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = t("app.title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  document.getElementById("lang-toggle").textContent = t("lang.switch");
  renderFreshness();
}

function toggleLanguage() {
  state.lang = state.lang === "vi" ? "en" : "vi";
  localStorage.setItem("dti.lang", state.lang);
  applyLanguage();
  route();  // re-render the view from the data already received
}

// ---------- session ----------
function showLogin() {
  disconnect();
  document.getElementById("login").hidden = false;
  document.getElementById("view").replaceChildren();
  document.getElementById("logout").hidden = true;
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  error.textContent = "";
  const response = await fetch("/api/session", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: form.username.value, password: form.password.value})});
  if (!response.ok) {
    error.textContent = t(response.status === 429 ? "login.locked" : "login.failed");
    return;
  }
  form.password.value = "";
  await start();
}

async function logout() {
  await fetch("/api/session", {method: "DELETE"});
  state.user = null;
  showLogin();
}

// An Explain fact as a person reads it: dates in local time, codes by name, yes / no.
const YES_NO_FACTS = new Set(["has_fee", "paid", "paid_online", "rated", "satisfied", "electronic", "signed",
  "personal_signature", "agency_signature", "synced", "digitized_on_receipt", "reused_digitized_data",
  "citizen_data_used", "result_issued", "result_electronic", "result_shared", "full_content", "citizen_data_connected",
  "certifies_copies", "electronic_copy"]);
function factText(kind, key, value) {
  if (value === "" || value === undefined) return null;
  if (key.endsWith("_at") || key === "due_after_pauses") return fmtDateTime(value);
  if (YES_NO_FACTS.has(key)) return value === "1" ? true : null;  // "Có phí", not "Có phí: có"; nothing when not
  if (key === "paused_days" || key === "supplement_requests") return Number(value) ? fmtPoints(Number(value)) : null;
  if (key === "last_status") {
    if (value === "0") return null;
    const code = kind === "document" ? value.padStart(2, "0") : value;
    return has(`status.${kind}.${code}`) ? `${t(`status.${kind}.${code}`)} (${code})` : code;
  }
  if (key === "channel") return has(`channel.${value}`) ? t(`channel.${value}`) : value;
  if (key === "service_level") return has(`level.${value}`) ? t(`level.${value}`) : value;
  return value;
}

// ---------- live stream and freshness ----------
function disconnect() {
  if (state.source) state.source.close();
  state.source = null;
}

function connect(params, handlers) {
  disconnect();
  state.lastLiveAt = 0;
  state.reachable = null;
  const source = new EventSource(`/api/stream?${new URLSearchParams(params)}`);
  state.source = source;
  // Live data proves ranking answers: a stall's banner clears with the next message, not
  // with the next idle `status` (which never comes while data keeps arriving).
  const live = () => { state.lastLiveAt = Date.now(); state.frozenAt = 0; state.reachable = true; renderFreshness(); };
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (message) => { handler(JSON.parse(message.data)); live(); });
  }
  source.addEventListener("status", (message) => {
    const status = JSON.parse(message.data);
    state.reachable = status.backend === "ok";
    state.pipeline = status.pipeline || null;
    renderPipeline();
    if (state.reachable) live(); else freeze();
  });
  source.addEventListener("period", () => connect(params, handlers));
  source.addEventListener("problem", (message) => showProblem(JSON.parse(message.data).detail));
  source.onerror = () => { if (source.readyState !== EventSource.OPEN) freeze(); };
}

function freeze() {
  if (!state.frozenAt) state.frozenAt = state.lastLiveAt || Date.now();
  state.reachable = false;
  renderFreshness();
}

function renderFreshness() {
  const node = document.getElementById("fresh");
  const banner = document.getElementById("offline-banner");
  const main = document.getElementById("main");
  if (!state.source) { node.textContent = ""; node.className = "fresh"; banner.hidden = true; return; }
  const silentFor = Date.now() - state.lastLiveAt;
  const offline = state.reachable === false || (state.lastLiveAt && silentFor > STALE_AFTER_MS);
  if (offline) {
    if (!state.frozenAt) state.frozenAt = state.lastLiveAt || Date.now();
    const text = t("fresh.offline", {t: fmtTime(state.frozenAt)});
    node.className = "fresh offline"; node.textContent = t("fresh.offline_short", {t: fmtTime(state.frozenAt)});
    banner.hidden = false; banner.textContent = text;
    main.classList.add("stale");
  } else if (!state.lastLiveAt) {
    node.className = "fresh connecting"; node.textContent = t("fresh.connecting");
  } else {
    node.className = "fresh live";
    node.textContent = t("fresh.updated", {s: Math.max(0, Math.round(silentFor / 1000))});
    banner.hidden = true; main.classList.remove("stale");
  }
  const last = state.data.activity?.last_event_at;
  document.getElementById("last-event").textContent = last ? t("fresh.last_event", {t: fmtTime(last)}) : "";
}

// Which part of the pipeline does not work (ranking's view: store, Kafka, the aggregator's
// progress), and the records set aside as dead letters.
function renderPipeline() {
  const banner = document.getElementById("pipeline-banner");
  const pipeline = state.pipeline;
  const lines = [];
  if (pipeline?.problems?.length) lines.push(t("pipeline.fault", {p: pipeline.problems.join("; ")}));
  if (pipeline?.dead_letters > 0) lines.push(t("pipeline.dead_letters", {n: fmtInt(pipeline.dead_letters)}));
  banner.hidden = !lines.length;
  banner.textContent = lines.join(" · ");
  banner.classList.toggle("fault", Boolean(pipeline?.problems?.length));
}

function showProblem(detail) {
  const view = document.getElementById("view");
  view.prepend(h("p", {class: "error card", role: "alert"}, t("error.load", {e: detail})));
}

// ---------- charts ----------
function clearCharts() {
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
}

function lineChart(container, x, series, options = {}) {
  const width = Math.max(320, container.clientWidth || 600);
  const chart = new uPlot({
    width, height: options.height || 240,
    scales: {x: {time: options.time !== false}, y: options.percent ? {range: [0, 100]} : {auto: true}},
    axes: [{values: options.xFormat ? (u, splits) => splits.map((ts) => options.xFormat(ts * 1000)) : undefined},
           {values: options.percent ? (u, ticks) => ticks.map((v) => `${v}%`) : undefined, size: 50}],
    series: [{label: options.xLabel || ""}, ...series.map((s, i) => ({
      label: s.label, stroke: s.colour || RATE_COLOURS[i % RATE_COLOURS.length], width: 2, spanGaps: false,
      points: {show: x.length < 40}, value: options.percent ? (u, v) => v === null ? "—" : `${v.toFixed(1)}%` : undefined,
    }))],
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), LOCAL_TZ),
  }, [x, ...series.map((s) => s.values)], container);
  state.charts.push(chart);
  return chart;
}

// ---------- ranking view ----------
function periodLabel(alias) {
  return state.meta?.periods?.[alias] || alias;
}

// Today / this month / this year, shared by both views and remembered.
// A download of a file the gateway makes (CSV or XLSX), for the current period and language.
function exportLinks(testId, path, params = {}, formats = ["csv", "xlsx"]) {
  return formats.map((fmt) => h("a", {class: "button", "data-testid": `${testId}-${fmt}`, download: "",
    href: `${path}.${fmt}?${new URLSearchParams({...params, period: state.period, lang: state.lang})}`}, t(`export.${fmt}`)));
}

// Relative periods, or any label the ranking service knows (YYYY-MM, YYYY-Qn, ...).
const PERIOD_CHOICES = ["today", "month", "quarter", "year", "previous_month", "previous_quarter", "previous_year"];

function periodSelect(onChange) {
  const custom = !PERIOD_CHOICES.includes(state.period);
  const choose = (value) => { state.period = value; localStorage.setItem("dti.period", value); onChange(); };
  const input = h("input", {id: "period-custom", "data-testid": "period-custom", size: 10, value: custom ? state.period : "",
    placeholder: t("period.custom_hint"), title: t("period.custom_hint"), hidden: !custom,
    onchange: (e) => { if (e.target.value.trim()) choose(e.target.value.trim()); }});
  const select = h("select", {id: "period", "data-testid": "period", onchange: (e) => {
    if (e.target.value === "custom") { input.hidden = false; input.focus(); } else choose(e.target.value);
  }}, PERIOD_CHOICES.map((p) => h("option", {value: p, selected: p === state.period}, `${t(`period.${p}`)} (${periodLabel(p)})`)),
    h("option", {value: "custom", selected: custom}, t("period.custom")));
  return h("span", {}, select, " ", input);
}

function rankingView() {
  clearCharts();
  const view = document.getElementById("view");
  const cohortSelect = h("select", {id: "cohort", "data-testid": "cohort", onchange: (e) => {
    state.cohort = e.target.value; localStorage.setItem("dti.cohort", state.cohort); state.data.ranking = null; rankingView();
  }}, state.meta.cohorts.map((c) => h("option", {value: c, selected: c === state.cohort}, t(`cohort.${c}`))));
  const periods = periodSelect(() => {
    state.data.ranking = null; state.data.headline = null; state.headlineAskedAt = 0; rankingView();
  });
  view.replaceChildren(
    h("section", {class: "card", id: "headline", "data-testid": "headline"}),
    h("section", {class: "card", id: "alerts", "data-testid": "alerts", hidden: true}),
    h("section", {class: "card"}, h("h2", {}, t("activity.title")),
      h("div", {class: "counters", id: "counters"}),
      h("div", {class: "grid2"},
        h("div", {}, h("div", {class: "muted"}, t("activity.per_minute")), h("div", {class: "chart", id: "activity-chart"})),
        h("div", {}, h("div", {class: "muted"}, t("activity.busiest")), h("ol", {class: "busiest", id: "busiest"})))),
    h("section", {class: "card"},
      h("div", {class: "tools"}, h("h2", {}, t("ranking.title")),
        h("label", {}, `${t("cohort.label")} `, cohortSelect), h("label", {}, `${t("period.label")} `, periods),
        h("span", {class: "spacer"}), h("span", {class: "muted", id: "rules"}),
        exportLinks("export", "/api/export/ranking", {cohort: state.cohort}, ["csv", "xlsx", "pdf"])),
      h("div", {id: "ranking"})));
  renderActivity(state.data.activity);
  renderRanking(state.data.ranking);
  renderHeadline(state.data.headline);
  renderAlerts(state.data.alerts);
  loadHeadline();
  connect({cohort: state.cohort, period: state.period, minutes: 60},
          {ranking: (ranking) => { renderRanking(ranking); loadHeadline(); }, activity: renderActivity});
}

// ---------- early warning: open dossiers overdue (quá hạn) or due within 24 h (sắp đến hạn) ----------
async function loadDue(code) {
  let due;
  try {
    due = await api(`/api/agencies/${encodeURIComponent(code)}/due`);
  } catch (error) { return; }  // a province total has none of its own
  const container = document.getElementById("due");
  if (!container || due.agency_code !== code) return;
  container.replaceChildren(h("h2", {}, t("due.title")),
    h("p", {"data-testid": "due-counts"}, t("due.counts", {o: fmtInt(due.overdue), s: fmtInt(due.due_soon)})),
    due.dossiers.length ? h("table", {"data-testid": "due-list"},
      h("thead", {}, h("tr", {}, h("th", {class: "left"}, t("due.dossier")), h("th", {class: "left"}, t("due.state")),
        h("th", {}, t("fact.received_at")), h("th", {}, t("fact.due_after_pauses")), h("th", {class: "left"}, t("fact.last_status")))),
      h("tbody", {}, due.dossiers.map((d) => h("tr", {"data-dossier": d.dossier_id, class: d.state},
        h("td", {class: "left"}, h("code", {}, d.dossier_id)),
        h("td", {class: `left rate ${d.state === "overdue" ? "critical" : "warning"}`}, t(`due.${d.state}`)),
        h("td", {}, fmtDateTime(d.received_at)), h("td", {}, fmtDateTime(d.due_at)),
        h("td", {class: "left"}, factText("dossier", "last_status", String(d.last_status)) || "—")))))
      : h("p", {class: "muted"}, t("due.none")));
}

// ---------- the province headline: its totals this period, beside the year it published ----------
const HEADLINE = [  // [label, indicator, what of it]: counts, then rates
  ["headline.documents", "doc_electronic_rate", "denominator"], ["ind.doc_electronic_rate", "doc_electronic_rate", "ratio"],
  ["ind.doc_personal_sign_rate", "doc_personal_sign_rate", "ratio"], ["ind.doc_agency_sign_rate", "doc_agency_sign_rate", "ratio"],
  ["headline.dossiers", "dossier_on_time_rate", "denominator"], ["ind.dossier_on_time_rate", "dossier_on_time_rate", "ratio"]];
const PUBLISHED_KEY = {"headline.documents": "documents", "headline.dossiers": "dossiers"};

async function loadHeadline() {
  clearTimeout(state.headlineTimer);
  if (!document.getElementById("headline")) return;  // another view now
  // Alerts are judged on ranking's own clock, not at each data change: looked at every 10 s too.
  state.headlineTimer = setTimeout(() => { state.headlineAskedAt = 0; loadHeadline(); }, 10000);
  const now = Date.now();
  if (state.headlineAskedAt && now - state.headlineAskedAt < 5000) return;  // at most every 5 s under live traffic
  state.headlineAskedAt = now;
  try {
    const [provinces, published, alerts] = await Promise.all([
      api(`/api/ranking?${new URLSearchParams({cohort: "province", period: state.period})}`),
      state.published || fetch("/static/published.json").then((r) => r.json()), api("/api/alerts")]);
    state.published = published;
    renderHeadline(provinces.entries[0] || null);
    renderAlerts(alerts);
  } catch (error) { /* the ranking below says what is wrong */ }
}

// The alerts firing (ranking's alert rules), most severe and newest first.
function renderAlerts(alerts) {
  state.data.alerts = alerts || state.data.alerts;
  alerts = state.data.alerts;
  const container = document.getElementById("alerts");
  if (!container || !alerts) return;
  container.hidden = !alerts.alerts.length;
  container.replaceChildren(h("h2", {}, t("alerts.title", {n: alerts.alerts.length})),
    h("ul", {class: "alerts"}, alerts.alerts.map((a) => h("li", {class: a.severity, "data-rule": a.rule},
      h("span", {class: `band ${a.severity === "critical" ? "critical" : "warning"}`}, t(`alerts.severity.${a.severity}`)), " ",
      h("a", {href: `#/agency/${encodeURIComponent(a.agency_code)}`}, a.agency_name), " — ",
      has(`alerts.rule.${a.rule}`) ? t(`alerts.rule.${a.rule}`, {v: fmtPct(a.value), t: fmtPct(a.threshold), m: fmtInt(Math.round(a.value))}) : a.message,
      h("small", {class: "muted"}, ` (${t("alerts.since", {t: fmtDateTime(a.since)})})`)))));
}

function renderHeadline(total) {
  state.data.headline = total || state.data.headline;
  total = state.data.headline;
  const container = document.getElementById("headline");
  if (!container || !total) return;
  const byCode = Object.fromEntries(total.indicators.map((i) => [i.code, i]));
  const reference = (state.published || {})[total.agency_code];
  container.replaceChildren(h("h2", {}, t("headline.title", {a: total.agency_name, p: total.period})),
    h("div", {class: "counters"}, HEADLINE.map(([label, code, what]) => {
      const indicator = byCode[code];
      const value = indicator ? indicator[what] : null;
      const shown = what === "ratio" ? fmtPct(value) : fmtInt(value ?? 0);
      const before = reference ? reference[PUBLISHED_KEY[label] || code] : undefined;
      return h("div", {class: "counter", "data-headline": code + (what === "ratio" ? "" : ".count")},
        h("div", {class: "figure"}, shown), h("div", {class: "label"}, t(label)),
        before === undefined ? "" : h("small", {}, t("headline.published", {y: reference.year,
          v: what === "ratio" ? fmtPct(before, 2) : fmtInt(before)})));  // as published
    })));
}

function renderActivity(activity) {
  state.data.activity = activity || state.data.activity;
  activity = state.data.activity;
  const counters = document.getElementById("counters");
  if (!activity || !counters) return;
  const thisMinute = Math.floor(activity.computed_at / 60000) * 60000;
  const current = activity.per_minute.find((m) => m.minute === thisMinute)?.events || {};
  const total = Object.values(activity.totals).reduce((a, b) => a + b, 0);
  counters.replaceChildren(
    h("div", {class: "counter"}, h("div", {class: "figure", id: "activity-total", "data-testid": "activity-total"}, fmtInt(total)),
      h("div", {class: "label"}, t("activity.total"))),
    ...MAIN_TYPES.map((type) => h("div", {class: "counter", style: `border-color:${TYPE_COLOURS[type]}`},
      h("div", {class: "figure", "data-testid": `count-${type}`}, fmtInt(activity.totals[type] || 0)),
      h("div", {class: "label"}, t(`type.${type}`), " ", h("small", {}, `(${fmtInt(current[type] || 0)} ${t("activity.last_minute")})`)))));
  const busiest = document.getElementById("busiest");
  if (busiest) {
    busiest.replaceChildren(...activity.agencies.slice(0, 8).map((a) => h("li", {},
      h("a", {href: `#/agency/${encodeURIComponent(a.agency_code)}`}, a.agency_name || a.agency_code), ` — ${fmtInt(a.events)}`)));
  }
  drawActivityChart(document.getElementById("activity-chart") || document.getElementById("agency-activity-chart"), activity);
  renderFreshness();
}

function drawActivityChart(container, activity) {
  if (!container || typeof uPlot === "undefined") return;
  // Finished minutes only: the minute under way would make every line dive at its end.
  const thisMinute = Math.floor(activity.computed_at / 60000) * 60000;
  const minutes = activity.per_minute.filter((m) => m.minute < thisMinute);
  const x = minutes.map((m) => m.minute / 1000);
  const series = MAIN_TYPES.map((type) => ({label: t(`type.${type}`), colour: TYPE_COLOURS[type],
    values: minutes.map((m) => m.events[type] || 0)}));
  const existing = state.charts.find((c) => c.root.parentNode === container);
  if (existing && existing.series.length === series.length + 1 && existing.series[1].label === series[0].label) {
    existing.setData([x, ...series.map((s) => s.values)]);
    return;
  }
  if (existing) { existing.destroy(); state.charts = state.charts.filter((c) => c !== existing); }
  container.replaceChildren();
  lineChart(container, x, series, {height: 220, xFormat: (ms) => new Date(ms).toLocaleTimeString(
    state.lang === "vi" ? "vi-VN" : "en-GB", {timeZone: LOCAL_TZ, hour: "2-digit", minute: "2-digit"})});
}

function rateCell(indicator) {
  const ratio = indicator?.ratio ?? null;
  return h("td", {class: `rate ${bandOf(ratio)}`}, fmtPct(ratio));
}

function renderRanking(ranking) {
  const previous = state.data.ranking;
  state.data.ranking = ranking || previous;
  ranking = state.data.ranking;
  const container = document.getElementById("ranking");
  if (!ranking || !container) return;
  if (ranking.cohort !== state.cohort) return;  // a late message of the view left behind
  document.getElementById("rules").textContent = t("ranking.rules", {v: ranking.rules_version});
  // Rows flash when their rank moves (points move with every event under live traffic).
  const before = new Map((previous?.entries || []).map((e) => [e.agency_code, e.rank]));
  const rates = state.meta.live_rates;
  container.replaceChildren(h("table", {"data-testid": "ranking-table", id: "ranking-table"},
    h("thead", {}, h("tr", {}, h("th", {}, t("col.rank")), h("th", {class: "left"}, t("col.agency")),
      h("th", {}, t("col.points")), h("th", {}, t("col.fraction")), h("th", {}, t("col.band")),
      rates.map((code) => h("th", {}, t(`ind.${code}`))))),
    h("tbody", {}, ranking.entries.length ? [] : h("tr", {}, h("td", {colspan: 5 + rates.length, class: "left muted"},
      t("ranking.empty"))), ranking.entries.map((entry) => {
      const byCode = Object.fromEntries(entry.indicators.map((i) => [i.code, i]));
      const changed = previous && before.has(entry.agency_code) && before.get(entry.agency_code) !== entry.rank;
      return h("tr", {"data-agency": entry.agency_code, class: changed ? "changed" : ""},
        h("td", {"data-testid": "rank"}, entry.rank),
        h("td", {class: "left"}, h("a", {href: `#/agency/${encodeURIComponent(entry.agency_code)}`}, entry.agency_name),
          h("div", {class: "muted"}, entry.agency_code)),
        h("td", {"data-testid": "points", class: "figure"}, `${fmtPoints(entry.total_points)} / ${fmtPoints(entry.max_points)}`),
        h("td", {"data-testid": "fraction", class: "figure"}, entry.fraction === null ? t("nodata") : fmtNum(entry.fraction, 3)),
        h("td", {}, entry.band ? h("span", {class: `band ${entry.band}`}, t(`band.${entry.band}`)) : ""),
        rates.map((code) => rateCell(byCode[code])));
    }))));
}

// ---------- agency view ----------
function agencyView(code, indicator) {
  clearCharts();
  const view = document.getElementById("view");
  if (state.data.score?.agency_code !== code) {
    state.data.score = null; state.data.trendDay = null; state.data.trendMonth = null;
  }
  view.replaceChildren(
    h("div", {class: "tools"}, h("a", {href: "#/"}, t("agency.back")), h("h2", {id: "agency-name"}, code),
      h("span", {class: "spacer"}), h("label", {}, `${t("period.label")} `, periodSelect(() => {
        state.data.score = null; agencyView(code, indicator);
      })), exportLinks("export-agency", `/api/export/agencies/${encodeURIComponent(code)}`)),
    h("section", {class: "card"}, h("h2", {id: "indicators-title"}), h("div", {id: "indicators"}),
      h("p", {class: "muted"}, t("agency.explain_hint"))),
    h("section", {class: "card"}, h("h2", {}, t("agency.live_rates")), h("div", {id: "live-rates"})),
    h("section", {class: "card", id: "due", "data-testid": "due"}),
    h("section", {class: "card explain", id: "explain", "data-testid": "explain"}),
    h("div", {class: "grid2"},
      h("section", {class: "card"}, h("h2", {}, t("agency.trend_days")), h("div", {class: "chart", id: "trend-day", "data-testid": "trend-day"})),
      h("section", {class: "card"}, h("h2", {}, t("agency.trend_months")), h("div", {class: "chart", id: "trend-month", "data-testid": "trend-month"}))),
    h("section", {class: "card"}, h("h2", {}, t("agency.activity")), h("div", {class: "chart", id: "agency-activity-chart"})));
  state.explainIndicator = indicator || null;
  renderScore(state.data.score);
  for (const granularity of ["day", "month"]) {
    const key = granularity === "day" ? "trendDay" : "trendMonth";
    if (state.data[key]) renderTrend(granularity, state.data[key]);
    else api(`/api/agencies/${encodeURIComponent(code)}/trend?granularity=${granularity}`)
      .then((trend) => { state.data[key] = trend; renderTrend(granularity, trend); })
      .catch((e) => showProblem(e.message));
  }
  if (indicator) loadExplain(code, indicator, "");
  loadDue(code);
  if (state.data.liveRates?.code === code) renderLiveRates();  // what is known now, then fresh
  loadLiveRates(code);
  connect({agency: code, period: state.period, minutes: 60}, {score: (score) => {
    renderScore(score); loadLiveRates(code); loadDue(code);
  }, activity: (a) => {
    state.data.activity = a; drawActivityChart(document.getElementById("agency-activity-chart"), a); renderFreshness();
  }});
}

// Today, this month and this year side by side; refreshed when the agency's score moves
// (at most every 2 s: the three answers come from ranking's cache between data changes).
const LIVE_PERIODS = ["today", "month", "year"];
let liveRatesAt = 0;
let liveRatesTimer = null;

function loadLiveRates(code) {
  const wait = Math.max(0, liveRatesAt + 2000 - Date.now());
  clearTimeout(liveRatesTimer);
  liveRatesTimer = setTimeout(async () => {
    liveRatesAt = Date.now();
    let scores;
    try {
      scores = await Promise.all(LIVE_PERIODS.map((p) => api(`/api/agencies/${encodeURIComponent(code)}?period=${p}`)));
    } catch (error) { return; }
    state.data.liveRates = {code, scores};
    renderLiveRates();
  }, wait);
}

function renderLiveRates() {
  const container = document.getElementById("live-rates");
  const data = state.data.liveRates;
  if (!container || !data) return;
  const rows = [...state.meta.live_rates, "fraction"];
  container.replaceChildren(h("table", {"data-testid": "live-rates"},
    h("thead", {}, h("tr", {}, h("th", {class: "left"}, t("col.indicator")),
      data.scores.map((score, i) => h("th", {}, `${t(`period.${LIVE_PERIODS[i]}`)} (${score.period})`)))),
    h("tbody", {}, rows.map((code) => h("tr", {"data-rate": code}, h("td", {class: "left"}, t(`ind.${code}`)),
      data.scores.map((score) => {
        if (code === "fraction") return h("td", {class: "figure"}, score.fraction === null ? t("nodata") : fmtNum(score.fraction, 3));
        return rateCell(score.indicators.find((i) => i.code === code));
      }))))));
}

function renderScore(score) {
  state.data.score = score || state.data.score;
  score = state.data.score;
  const container = document.getElementById("indicators");
  if (!score || !container) return;
  document.getElementById("agency-name").textContent = `${score.agency_name} (${score.agency_code})`;
  document.getElementById("indicators-title").textContent = t("agency.indicators", {p: score.period});
  const rows = [];
  const add = (indicator, depth) => {
    const picked = indicator.code === state.explainIndicator;
    const open = () => { location.hash = `#/agency/${encodeURIComponent(score.agency_code)}/explain/${indicator.code}`; };
    const note = indicator.note ? (has(`note.${indicator.code}`) ? t(`note.${indicator.code}`) : indicator.note) : "";
    rows.push(h("tr", {class: `pick${picked ? " picked" : ""}`, "data-indicator": indicator.code, tabindex: "0",
      role: "link", "aria-label": t("explain.title", {i: t(`ind.${indicator.code}`)}), onclick: open,
      onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); } }},
      // The portal's metric code on hover: what its published figures call this indicator.
      h("td", {class: "left", style: `padding-left:${0.5 + depth * 1.2}rem`, title: indicator.portal_code || null},
        t(`ind.${indicator.code}`),
        note ? h("div", {class: "muted"}, note) : ""),
      h("td", {class: "left muted"}, t(`group.${indicator.group}`)),
      h("td", {}, fmtInt(indicator.numerator)), h("td", {}, fmtInt(indicator.denominator)),
      rateCell(indicator), h("td", {class: "figure"}, `${fmtPoints(indicator.points)} / ${fmtPoints(indicator.max_points)}`)));
    for (const component of indicator.components) add(component, depth + 1);
  };
  score.indicators.forEach((i) => add(i, 0));
  container.replaceChildren(h("table", {"data-testid": "indicators"},
    h("thead", {}, h("tr", {}, h("th", {class: "left"}, t("col.indicator")), h("th", {class: "left"}, t("col.group")),
      h("th", {}, t("col.numerator")), h("th", {}, t("col.denominator")), h("th", {}, t("col.ratio")), h("th", {}, t("col.points")))),
    h("tbody", {}, rows,
      h("tr", {}, h("td", {class: "left"}, h("strong", {}, t("agency.total"))), h("td", {}), h("td", {}), h("td", {}),
        h("td", {"data-testid": "agency-fraction"}, score.fraction === null ? t("nodata") : fmtNum(score.fraction, 3)),
        h("td", {class: "figure"}, h("strong", {}, `${fmtPoints(score.total_points)} / ${fmtPoints(score.max_points)}`),
          " ", score.band ? h("span", {class: `band ${score.band}`}, t(`band.${score.band}`)) : "")),
      // Each published index apart, on its own scale (766 is out of 100), as the province reports it.
      ...(score.indices || []).map((index) => h("tr", {"data-testid": `index-${index.index}`},
        h("td", {class: "left"}, t(`index.${index.index}`)), h("td", {}), h("td", {}), h("td", {}),
        h("td", {}, index.max_points > 0 ? fmtNum(index.points / index.max_points, 3) : t("nodata")),
        h("td", {class: "figure"}, `${fmtPoints(index.points)} / ${fmtPoints(index.max_points)} `,
          h("span", {class: "muted"}, t("index.scale", {max: fmtPoints(index.index_max_points)}))))))));
}

function renderTrend(granularity, trend) {
  const container = document.getElementById(granularity === "day" ? "trend-day" : "trend-month");
  if (!container || typeof uPlot === "undefined") return;
  container.replaceChildren();
  const codes = ["fraction", ...state.meta.live_rates];
  const x = trend.points.map((p) => p.period_start / 1000);
  const series = codes.map((code) => ({label: t(`ind.${code}`), values: trend.points.map((p) => {
    const value = code === "fraction" ? p.fraction : p.indicators.find((i) => i.code === code)?.ratio;
    return value === null || value === undefined ? null : value * 100;
  })}));
  const dateParts = granularity === "day" ? {day: "2-digit", month: "2-digit"} : {month: "2-digit", year: "numeric"};
  // Numeric day/month labels read the same in both languages (dd/mm, mm/yyyy).
  lineChart(container, x, series, {percent: true, height: 260, xFormat: (ms) => new Date(ms).toLocaleDateString(
    "en-GB", {timeZone: LOCAL_TZ, ...dateParts})});
}

async function loadExplain(code, indicator, pageToken) {
  const container = document.getElementById("explain");
  if (!container) return;
  let page;
  try {
    page = await api(`/api/agencies/${encodeURIComponent(code)}/explain?${new URLSearchParams({indicator, period: state.period, page_token: pageToken})}`);
  } catch (error) {
    container.replaceChildren(h("h2", {}, t(`ind.${indicator}`)), h("p", {class: "muted"},
      /procedures|mixes|only single/.test(error.message) ? t("explain.not_explainable") : t("error.load", {e: error.message})));
    return;
  }
  if (!pageToken) {
    container.replaceChildren(h("h2", {}, t("explain.title", {i: t(`ind.${indicator}`)})),
      h("p", {class: "muted", "data-testid": "explain-total"}, t("explain.total", {n: fmtInt(page.total_items)})),
      h("ol", {id: "explain-list", "data-testid": "explain-list"}));
    if (!page.total_items) container.append(h("p", {}, t("explain.none")));
  }
  const list = document.getElementById("explain-list");
  document.getElementById("explain-more")?.remove();
  for (const item of page.items) {
    const anchor = `item-${item.id}`;
    list.append(h("li", {id: anchor, "data-id": item.id},
      `${t(`explain.kind.${item.kind}`)} `,
      h("a", {href: `#/agency/${encodeURIComponent(code)}/explain/${indicator}/${encodeURIComponent(item.id)}`}, h("code", {}, item.id)),
      item.agency_code && item.agency_code !== code
        ? h("span", {class: "muted", "data-testid": "merged-from"}, ` (${t("explain.merged_from", {a: item.agency_name || item.agency_code})})`) : "",
      " — ", item.reasons.map((text, i) => has(`reason.${item.reason_codes[i]}`)
        ? t(`reason.${item.reason_codes[i]}`) : text).join("; "),
      h("div", {class: "facts"}, Object.entries(item.facts).map(([k, v]) => [k, factText(item.kind, k, v)])
        .filter(([, v]) => v !== null).map(([k, v]) => v === true ? t(`fact.${k}`) : `${t(`fact.${k}`)}: ${v}`)
        .join(" · "))));
  }
  if (page.next_page_token) {
    container.append(h("button", {id: "explain-more", type: "button",
      onclick: () => loadExplain(code, indicator, page.next_page_token)}, t("explain.more")));
  }
  const wanted = decodeURIComponent(location.hash.split("/")[5] || "");
  if (wanted) document.querySelector(`[data-id="${CSS.escape(wanted)}"]`)?.scrollIntoView({block: "center"});
}

// ---------- routing and start ----------
function route() {
  if (!state.user || !state.meta) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const wall = parts[0] === "wall";
  document.body.classList.toggle("wall", wall);
  clearInterval(state.rotation);
  if (wall) {
    // A wall screen: the ranking view in large type, each cohort in turn every N seconds.
    const seconds = Math.max(5, Number(parts[1]) || 30);
    const cohorts = state.meta.cohorts.filter((c) => c !== "province");
    state.rotation = setInterval(() => {
      const next = cohorts[(cohorts.indexOf(state.cohort) + 1) % cohorts.length];
      state.cohort = next; state.data.ranking = null; rankingView();
    }, seconds * 1000);
  }
  if (parts[0] === "agency" && parts[1]) agencyView(parts[1], parts[2] === "explain" ? parts[3] : null);
  else rankingView();
}

async function start() {
  try {
    state.user = (await api("/api/session")).user;
  } catch { return; }
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = false;
  try {
    state.meta = await api("/api/meta");
  } catch (error) {
    showProblem(error.message);
    return;
  }
  route();
}

async function boot() {
  state.strings = await (await fetch("/static/i18n.json")).json();
  applyLanguage();
  document.getElementById("lang-toggle").addEventListener("click", toggleLanguage);
  document.getElementById("logout").addEventListener("click", logout);
  document.getElementById("login-form").addEventListener("submit", login);
  window.addEventListener("hashchange", route);
  setInterval(renderFreshness, 1000);
  // Keeps a screen that is left on logged in (the server renews a session past half its
  // life), and shows the login form as soon as a session ends.
  setInterval(() => { if (state.user) api("/api/session").catch(() => {}); }, 10 * 60 * 1000);
  await start();
}

document.addEventListener("DOMContentLoaded", boot);
