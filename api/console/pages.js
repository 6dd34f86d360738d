// The console's pages. Each page is a function (ctx, view) that fills `view` and wires its
// events. DOM is built with `h`, which only ever sets text with textContent: audit events and
// payment descriptions are attacker-controlled strings and must never become markup.

import { call, claims, describe, query, session } from "./api.js";
import { barChart } from "./chart.js";
import { format, toMinor, MAX_MINOR } from "./money.js";

/** Creates an element: h("td", { class: "num" }, "12", child, …). */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function field(id, label, input, hint, cls) {
  return h("div", { class: cls ? `field ${cls}` : "field" },
    h("label", { for: id }, label),
    input,
    hint ? h("span", { class: "muted hint" }, hint) : null,
    h("span", { class: "field-error", id: `${id}-error`, "aria-live": "polite" }));
}

function setFieldError(form, id, message) {
  // By id, not a selector: a field name from the server may hold "." or "[".
  const input = document.getElementById(id);
  const err = document.getElementById(`${id}-error`);
  if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
  if (err) err.textContent = message || "";
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 19);
}

function pill(text) {
  return h("span", { class: `pill ${String(text).replace(/[^a-z_]/g, "")}` }, text);
}

// --- sign in -------------------------------------------------------------------------------

const ROLE_CHOICES = [
  ["", "Tenant user (payments, usage)"],
  ["security_auditor", "Security auditor (audit)"],
  ["super_admin", "Super admin"],
];

export function login(ctx, view) {
  const status = h("div", { class: "form-status", id: "login-status", role: "status" });
  const tokenInput = h("textarea", { id: "login-token", placeholder: "eyJhbGciOi…", spellcheck: "false", autocomplete: "off" });
  const paste = h("form", { class: "card", id: "login-form" },
    h("h2", {}, "Sign in with a token"),
    h("p", { class: "muted" }, "Paste a JWT from your identity provider. It is kept in this tab only (session storage) and sent as a bearer token to this API."),
    field("login-token", "Token", tokenInput),
    h("button", { class: "primary", type: "submit", id: "login-submit" }, "Sign in"));
  paste.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await signIn(ctx, tokenInput.value.trim(), status);
  });

  const cards = [paste];
  if (ctx.config.devMode) {
    const role = h("select", { id: "mint-role" }, ROLE_CHOICES.map(([v, l]) => h("option", { value: v }, l)));
    const tenant = h("input", { id: "mint-tenant", value: ctx.hostTenant || session.tenant || "", placeholder: "bank1", autocomplete: "off" });
    const sub = h("input", { id: "mint-sub", value: "dev-user", autocomplete: "off" });
    const mint = h("form", { class: "card", id: "mint-form" },
      h("h2", {}, "Dev mode: mint a token"),
      h("p", { class: "muted" }, "This API runs with [api] dev_mode = true and signs tokens for anyone who asks. Never enable it where real data lives."),
      field("mint-role", "Role", role),
      field("mint-tenant", "Tenant", tenant, ctx.hostTenant ? `Detected from the address: ${ctx.hostTenant}` : "No tenant in the address: choose one (sent as X-Tenant-ID)."),
      field("mint-sub", "Subject", sub),
      h("button", { class: "primary", type: "submit", id: "mint-submit" }, "Mint and sign in"));
    mint.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      setFieldError(mint, "mint-tenant", "");
      const body = { sub: sub.value.trim() || "dev-user", roles: role.value ? [role.value] : [] };
      const t = tenant.value.trim().toLowerCase();
      if (t) body.tenantId = t;
      if (!role.value && !t) {
        setFieldError(mint, "mint-tenant", "a tenant user needs a tenant");
        return;
      }
      const res = await call("/v1/dev/token", { method: "POST", body, anonymous: true });
      if (!res.ok) {
        for (const e of res.body?.errors || []) {
          const id = { tenantId: "mint-tenant", sub: "mint-sub" }[e.field] || "mint-role";
          setFieldError(mint, id, e.message);
        }
        status.textContent = describe(res);
        status.className = "form-status bad";
        return;
      }
      if (!ctx.hostTenant) session.tenant = t || null;
      await signIn(ctx, res.body.token, status);
    });
    cards.push(mint);
  }
  view.replaceChildren(
    h("div", { class: "login" },
      h("h1", {}, ctx.tenant ? `Sign in to ${ctx.tenant.settings?.displayName || ctx.tenant.name}` : "Sign in"),
      h("div", { class: "grid-2" }, cards),
      status));
}

async function signIn(ctx, token, status) {
  const c = token ? claims(token) : null;
  if (!c) {
    status.textContent = "That is not a JWT.";
    status.className = "form-status bad";
    return;
  }
  session.token = token;
  const roles = Array.isArray(c.roles) ? c.roles : [];
  const probe = c.tenantId || session.tenant || ctx.hostTenant
    ? await call("/v1/tenant")
    : await call("/v1/admin/audit?limit=1");
  if (probe.status === 401 || (probe.status === 403 && !roles.length)) {
    session.token = null;
    status.textContent = describe(probe);
    status.className = "form-status bad";
    return;
  }
  await ctx.refresh();
  ctx.navigate(ctx.defaultPage());
}

// --- payments ------------------------------------------------------------------------------

/** A random idempotency key. crypto.randomUUID exists only in secure contexts (https or
 *  localhost); getRandomValues exists everywhere. */
function newKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const PAGE_SIZE = 10;

export function payments(ctx, view) {
  const currencies = ctx.config.currencies || {};
  const defaultCurrency = ctx.tenant?.settings?.currency || "EUR";
  const form = h("form", { class: "card", id: "pay-form", novalidate: true });
  const amount = h("input", { id: "pay-amount", inputmode: "decimal", autocomplete: "off", placeholder: "125.00" });
  const currency = h("select", { id: "pay-currency" },
    Object.keys(currencies).map((c) => h("option", { value: c, selected: c === defaultCurrency }, c)));
  const customer = h("input", { id: "pay-customer", maxlength: 64, autocomplete: "off", placeholder: "cus_… or your reference" });
  const description = h("input", { id: "pay-description", maxlength: 500, autocomplete: "off", placeholder: "Invoice 2026-114" });
  const decline = h("input", { id: "pay-decline", type: "checkbox" });
  const status = h("div", { class: "form-status", id: "pay-status", role: "status" });
  const submit = h("button", { class: "primary", type: "submit", id: "pay-submit" }, "Create payment");
  form.append(
    h("h2", {}, "New payment"),
    h("div", { class: "row" }, field("pay-amount", "Amount", amount), field("pay-currency", "Currency", currency, null, "narrow")),
    field("pay-customer", "Customer (optional)", customer),
    field("pay-description", "Description (optional)", description),
    h("div", { class: "field" }, h("label", { class: "check" }, decline, "Simulate a declined card")),
    submit, status);

  // One idempotency key per payment the user means to make: a double click or a retry after a
  // timeout replays the first answer instead of charging twice. A new key after each success.
  let key = newKey();
  // Any change makes it a different payment, so it gets a new key: an unchanged retry (after a
  // network error, say) keeps the old one and cannot charge twice.
  form.addEventListener("input", () => { status.textContent = ""; key = newKey(); });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    for (const id of ["pay-amount", "pay-currency", "pay-customer", "pay-description"]) setFieldError(form, id, "");
    const digits = currencies[currency.value];
    let ok = true;
    if (digits === undefined) { setFieldError(form, "pay-currency", "choose an ISO 4217 currency"); ok = false; }
    const parsed = toMinor(amount.value, digits ?? 2);
    if (parsed.error) { setFieldError(form, "pay-amount", `Amount ${parsed.error}`); ok = false; }
    if (customer.value.length > 64) { setFieldError(form, "pay-customer", "at most 64 characters"); ok = false; }
    if (description.value.length > 500) { setFieldError(form, "pay-description", "at most 500 characters"); ok = false; }
    if (!ok) {
      status.textContent = "Check the highlighted fields.";
      status.className = "form-status bad";
      return;
    }
    const body = { amount: parsed.minor, currency: currency.value };
    if (customer.value.trim()) body.customer = customer.value.trim();
    if (description.value.trim()) body.description = description.value.trim();
    if (decline.checked) body.metadata = { simulate: "decline" };
    submit.disabled = true;
    status.textContent = "Sending…";
    status.className = "form-status";
    const res = await call("/v1/payments", { method: "POST", body, headers: { "Idempotency-Key": key } });
    submit.disabled = false;
    if (res.ok) {
      key = newKey();
      const p = res.body;
      status.textContent = `Payment ${p.id} ${p.status}: ${format(p.amount, p.currency, currencies[p.currency])}`;
      status.className = p.status === "succeeded" ? "form-status ok" : "form-status bad";
      form.reset();
      currency.value = body.currency;
      history.reload(true);
      return;
    }
    const map = { amount: "pay-amount", currency: "pay-currency", customer: "pay-customer", description: "pay-description", metadata: "pay-description" };
    for (const e of res.body?.errors || []) setFieldError(form, map[e.field] || "pay-amount", `${e.field} ${e.message}`);
    status.textContent = describe(res);
    status.className = "form-status bad";
  });

  const history = paymentHistory(ctx, currencies);
  view.replaceChildren(
    h("h1", {}, "Payments"),
    h("div", { class: "grid" }, form, history.card));
  history.reload(true);
}

function paymentHistory(ctx, currencies) {
  const filter = h("select", { id: "history-status" },
    ["", "pending", "succeeded", "failed", "refunded"].map((s) => h("option", { value: s }, s || "any status")));
  const tbody = h("tbody", { id: "history-rows" });
  const pageLabel = h("span", { id: "history-page" });
  const prev = h("button", { type: "button", id: "history-prev" }, "← Newer");
  const next = h("button", { type: "button", id: "history-next" }, "Older →");
  const note = h("div", { class: "form-status", id: "history-status-line", role: "status" });
  const card = h("section", { class: "card", id: "history" },
    h("div", { class: "toolbar" }, h("h2", {}, "Transaction history"), h("div", { class: "field" }, filter)),
    h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Created (UTC)"), h("th", {}, "Payment"), h("th", {}, "Customer"), h("th", {}, "Description"), h("th", {}, "Status"), h("th", { class: "num" }, "Amount"), h("th", {}))),
      tbody),
    h("div", { class: "pager" }, pageLabel, prev, next),
    note);
  // Cursor pagination: `cursors[i]` is the starting_after of page i (page 0 has none).
  let cursors = [null];
  let page = 0;
  let hasMore = false;
  let lastId = null;

  async function load() {
    const res = await call(`/v1/payments${query({ limit: PAGE_SIZE, starting_after: cursors[page], status: filter.value })}`);
    if (!res.ok) {
      note.textContent = describe(res);
      note.className = "form-status bad";
      return;
    }
    note.textContent = "";
    const rows = res.body.data || [];
    hasMore = !!res.body.has_more;
    lastId = rows.length ? rows[rows.length - 1].id : null;
    tbody.replaceChildren(...(rows.length ? rows.map(row) : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No payments yet."))]));
    pageLabel.textContent = `Page ${page + 1}`;
    prev.disabled = page === 0;
    next.disabled = !hasMore;
  }

  function row(p) {
    const refund = p.status === "succeeded"
      ? h("button", { type: "button", class: "refund", onclick: async (ev) => {
          ev.target.disabled = true;
          const res = await call(`/v1/payments/${encodeURIComponent(p.id)}/refund`, { method: "POST" });
          if (!res.ok) { note.textContent = describe(res); note.className = "form-status bad"; }
          await load();
        } }, "Refund")
      : null;
    return h("tr", { dataset: { id: p.id } },
      h("td", { class: "mono" }, when(p.createdAt)),
      h("td", { class: "mono" }, p.id),
      h("td", {}, p.customer || ""),
      h("td", {}, p.description || ""),
      h("td", {}, pill(p.status)),
      h("td", { class: "num" }, format(p.amount, p.currency, currencies[p.currency])),
      h("td", {}, refund));
  }

  prev.addEventListener("click", () => { if (page > 0) { page -= 1; load(); } });
  next.addEventListener("click", () => {
    if (!hasMore || !lastId) return;
    cursors = cursors.slice(0, page + 1);
    cursors.push(lastId);
    page += 1;
    load();
  });
  filter.addEventListener("change", () => reload(true));
  function reload(first) {
    if (first) { cursors = [null]; page = 0; }
    return load();
  }
  return { card, reload };
}

// --- usage ---------------------------------------------------------------------------------

function lastPeriods(n) {
  const out = [];
  const d = new Date();
  let y = d.getUTCFullYear();
  let m = d.getUTCMonth() + 1;
  for (let i = 0; i < n; i++) {
    out.unshift(`${y}-${String(m).padStart(2, "0")}`);
    m -= 1;
    if (m === 0) { m = 12; y -= 1; }
  }
  return out;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export async function usage(ctx, view) {
  view.replaceChildren(h("h1", {}, "Usage"), h("p", { class: "muted" }, "Loading…"));
  const periods = lastPeriods(6);
  const results = await Promise.all(periods.map((p) => call(`/v1/usage${query({ period: p })}`)));
  const current = results[results.length - 1];
  if (!current.ok) {
    view.replaceChildren(h("h1", {}, "Usage"), h("div", { class: "card bad" }, describe(current)));
    return;
  }
  const u = current.body.usage || {};
  const limits = u.limits || {};
  const quota = limits.transactions;
  const pct = quota ? Math.min(100, (100 * (u.transactions || 0)) / quota) : 0;
  const meter = h("div", { class: `meter${pct >= 90 ? " hot" : ""}` }, h("span", {}));
  meter.firstChild.style.width = `${pct}%`;
  const stats = h("div", { class: "stats", id: "usage-stats" },
    h("div", { class: "stat" }, h("div", { class: "label" }, "Transactions this month"),
      h("div", { class: "value", id: "usage-transactions" }, String(u.transactions ?? 0)),
      h("div", { class: "sub" }, quota ? `of ${quota.toLocaleString("en")} included (${pct.toFixed(1)}%)` : "no monthly quota"),
      meter),
    h("div", { class: "stat" }, h("div", { class: "label" }, "API calls"), h("div", { class: "value" }, (u.apiCalls ?? 0).toLocaleString("en")),
      h("div", { class: "sub" }, limits.requestsPerMinute ? `limit ${limits.requestsPerMinute.toLocaleString("en")} per minute` : "")),
    h("div", { class: "stat" }, h("div", { class: "label" }, "Storage"), h("div", { class: "value" }, bytes(u.storageBytes ?? 0))),
    h("div", { class: "stat" }, h("div", { class: "label" }, "Bandwidth"), h("div", { class: "value" }, bytes(u.bandwidthBytes ?? 0))));
  const tx = results.map((r) => (r.ok ? r.body.usage?.transactions || 0 : 0));
  const calls = results.map((r) => (r.ok ? r.body.usage?.apiCalls || 0 : 0));
  const chartCard = h("section", { class: "card", id: "usage-chart" },
    h("h2", {}, "Transactions per month against the quota"),
    barChart({ labels: periods, series: [{ name: "transactions", values: tx, color: brandColor() }], limit: quota ? { value: quota, label: `quota ${quota.toLocaleString("en")}` } : null, title: "Transactions per month" }));
  const callsCard = h("section", { class: "card" },
    h("h2", {}, "API calls per month"),
    barChart({ labels: periods, series: [{ name: "API calls", values: calls, color: "#1f77b4" }], title: "API calls per month" }));
  view.replaceChildren(
    h("h1", {}, "Usage"),
    h("p", { class: "muted" }, `${ctx.tenant?.name || ""} · ${ctx.tenant?.tier || ""} tier · period ${current.body.period} (UTC) · source ${current.body.source}`),
    stats, chartCard, callsCard);
}

// --- security ------------------------------------------------------------------------------

function daysBack(n) {
  const out = [];
  const now = Date.now();
  for (let i = n - 1; i >= 0; i--) out.push(new Date(now - i * 86_400_000).toISOString().slice(0, 10));
  return out;
}

export async function security(ctx, view) {
  const days = daysBack(14);
  const chartCard = h("section", { class: "card", id: "audit-chart" }, h("h2", {}, "Rejected queries per day (last 14 days, UTC)"), h("p", { class: "muted" }, "Loading…"));
  const filters = {
    tenant: h("input", { id: "audit-tenant", placeholder: "bank1", autocomplete: "off" }),
    rule: h("input", { id: "audit-rule", placeholder: "tenant_override", autocomplete: "off" }),
    principal: h("input", { id: "audit-principal", placeholder: "svc-bank1", autocomplete: "off" }),
    kind: h("select", { id: "audit-kind" }, ["", "rejection", "auth_failure", "bypass", "admin"].map((k) => h("option", { value: k }, k || "any kind"))),
    source: h("select", { id: "audit-source" }, ["", "proxy", "api"].map((k) => h("option", { value: k }, k || "any source"))),
    from: h("input", { id: "audit-from", type: "date" }),
    to: h("input", { id: "audit-to", type: "date" }),
  };
  const form = h("form", { class: "card", id: "audit-filters" },
    h("h2", {}, "Audit events"),
    h("div", { class: "filters" },
      field("audit-tenant", "Tenant", filters.tenant),
      field("audit-rule", "Rule", filters.rule),
      field("audit-principal", "Principal", filters.principal),
      field("audit-kind", "Kind", filters.kind),
      field("audit-source", "Source", filters.source),
      field("audit-from", "From (UTC day)", filters.from),
      field("audit-to", "To (UTC day, inclusive)", filters.to),
      h("div", { class: "field" }, h("label", {}, " "), h("button", { class: "primary", type: "submit", id: "audit-apply" }, "Apply"))));
  const tbody = h("tbody", { id: "audit-rows" });
  const note = h("div", { class: "form-status", role: "status" });
  const prev = h("button", { type: "button", id: "audit-prev" }, "← Newer");
  const next = h("button", { type: "button", id: "audit-next" }, "Older →");
  const pageLabel = h("span", {});
  const table = h("section", { class: "card", id: "audit-table" },
    h("table", {},
      h("thead", {}, h("tr", {}, ["Time (UTC)", "Source", "Kind", "Rule", "Tenant", "Principal", "Target", "Message"].map((t) => h("th", {}, t)))),
      tbody),
    h("div", { class: "pager" }, pageLabel, prev, next),
    note);
  view.replaceChildren(h("h1", {}, "Security"), chartCard, form, table);

  function params() {
    const p = {};
    for (const k of ["tenant", "rule", "principal", "kind", "source"]) p[k] = filters[k].value.trim();
    if (filters.from.value) p.from = `${filters.from.value}T00:00:00Z`;
    if (filters.to.value) p.to = new Date(Date.parse(`${filters.to.value}T00:00:00Z`) + 86_400_000).toISOString();
    return p;
  }

  let cursors = [null];
  let page = 0;
  let hasMore = false;
  let lastId = null;
  async function load() {
    const res = await call(`/v1/admin/audit${query({ ...params(), limit: 25, starting_after: cursors[page] })}`);
    if (!res.ok) {
      note.textContent = describe(res);
      note.className = "form-status bad";
      for (const e of res.body?.errors || []) setFieldError(form, `audit-${e.field}`, e.message);
      return;
    }
    note.textContent = "";
    const rows = res.body.data || [];
    hasMore = !!res.body.has_more;
    lastId = rows.length ? rows[rows.length - 1].id : null;
    tbody.replaceChildren(...(rows.length ? rows.flatMap(eventRows) : [h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No events match."))]));
    pageLabel.textContent = `Page ${page + 1}`;
    prev.disabled = page === 0;
    next.disabled = !hasMore;
  }
  function eventRows(e) {
    const detail = h("tr", { class: "detail", hidden: true }, h("td", { colspan: 8 }, h("pre", {}, JSON.stringify(e, null, 2))));
    const target = [e.database, e.collection].filter(Boolean).join(".") || (typeof e.command === "string" ? e.command : "");
    const main = h("tr", { class: "clickable", dataset: { id: e.id || "" }, title: "Show the whole event", onclick: () => { detail.hidden = !detail.hidden; } },
      h("td", { class: "mono" }, when(e.at)),
      h("td", {}, e.source || ""),
      h("td", {}, pill(e.kind || "")),
      h("td", { class: "mono" }, e.rule || ""),
      h("td", {}, e.tenant || ""),
      h("td", { class: "mono" }, e.principal || ""),
      h("td", { class: "mono" }, target),
      h("td", {}, e.message || ""));
    return [main, detail];
  }
  prev.addEventListener("click", () => { if (page > 0) { page -= 1; load(); } });
  next.addEventListener("click", () => {
    if (!hasMore || !lastId) return;
    cursors = cursors.slice(0, page + 1);
    cursors.push(lastId);
    page += 1;
    load();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    for (const k of Object.keys(filters)) setFieldError(form, `audit-${k}`, "");
    cursors = [null];
    page = 0;
    load();
    loadChart();
  });

  async function loadChart() {
    const p = params();
    delete p.kind;
    const res = await call(`/v1/admin/audit/summary${query({ ...p, kind: "rejection", from: p.from || `${days[0]}T00:00:00Z` })}`);
    if (!res.ok) {
      chartCard.replaceChildren(h("h2", {}, "Rejected queries per day"), h("p", { class: "form-status bad" }, describe(res)));
      return;
    }
    const rows = res.body.data || [];
    const rules = [...new Set(rows.map((r) => r.rule || "unknown"))].sort();
    const series = rules.map((rule) => ({
      name: rule,
      values: days.map((d) => rows.filter((r) => r.day === d && (r.rule || "unknown") === rule).reduce((s, r) => s + (r.count || 0), 0)),
    }));
    const total = series.reduce((s, x) => s + x.values.reduce((a, b) => a + b, 0), 0);
    chartCard.replaceChildren(
      h("h2", {}, `Rejected queries per day (last 14 days, UTC): ${total}`),
      barChart({ labels: days.map((d) => d.slice(5)), series, title: "Rejected queries per day by rule" }));
  }
  await Promise.all([load(), loadChart()]);
}

export { MAX_MINOR };

function brandColor() {
  return getComputedStyle(document.documentElement).getPropertyValue("--brand").trim() || "#1f4e79";
}
