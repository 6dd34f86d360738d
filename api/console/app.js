// Console bootstrap: learn the API's mode (/console/config.json), who the tenant is
// (GET /v1/tenant, resolved from this page's host, the dev-mode choice or the token), theme the
// page from the tenant's settings, and route between pages by the URL fragment.

import { call, claims, session } from "./api.js";
import { h, login, payments, security, usage } from "./pages.js";

const PAGES = {
  login: { title: "Sign in", render: login, needs: () => true },
  payments: { title: "Payments", render: payments, needs: (ctx) => ctx.canTenant() },
  usage: { title: "Usage", render: usage, needs: (ctx) => ctx.canTenant() },
  security: { title: "Security", render: security, needs: (ctx) => ctx.canAudit() },
};

const HEX = /^#[0-9a-fA-F]{6}$/;

const ctx = {
  config: { devMode: false, currencies: {} },
  tenant: null, // GET /v1/tenant, or null
  hostTenant: null, // the tenant this page's address names, if any
  claims: null,
  roles() { return Array.isArray(this.claims?.roles) ? this.claims.roles : []; },
  canTenant() { return !!this.claims && !!this.tenant && (this.claims.tenantId === this.tenant.tenantId || this.roles().includes("super_admin")); },
  canAudit() { return this.roles().some((r) => r === "security_auditor" || r === "super_admin"); },
  defaultPage() {
    if (!this.claims) return "login";
    if (this.canTenant()) return "payments";
    if (this.canAudit()) return "security";
    return "login";
  },
  navigate(page) {
    if (location.hash !== `#/${page}`) location.hash = `#/${page}`;
    else render();
  },
  async refresh() {
    this.claims = session.token ? claims(session.token) : null;
    // Anonymous first: what the address alone names (the console's theme before sign-in).
    const anon = await call("/v1/tenant", { anonymous: true });
    this.hostTenant = anon.ok && !session.tenant ? anon.body.tenantId : this.hostTenant;
    let t = anon.ok ? anon.body : null;
    if (this.claims) {
      const me = await call("/v1/tenant");
      if (me.ok) t = me.body;
      else if (me.status === 401) { session.token = null; this.claims = null; }
      else if (!this.canAudit()) t = null;
    }
    this.tenant = t;
    theme(t);
    chrome();
  },
};

function theme(t) {
  const root = document.documentElement;
  const s = t?.settings || {};
  if (HEX.test(s.brandColor || "")) root.style.setProperty("--brand", s.brandColor);
  else root.style.removeProperty("--brand");
  const name = s.displayName || t?.name || "tenantgate";
  document.getElementById("tenant-name").textContent = name;
  document.title = `${name} · console`;
  const logo = document.getElementById("logo");
  const initials = name.split(/\s+/).map((w) => w[0] || "").join("").slice(0, 2).toUpperCase() || "tg";
  logo.replaceChildren(document.createTextNode(initials));
  if (typeof s.logoUrl === "string" && s.logoUrl.startsWith("https://")) {
    const img = h("img", { src: s.logoUrl, alt: "" });
    img.addEventListener("error", () => logo.replaceChildren(document.createTextNode(initials)));
    img.addEventListener("load", () => logo.replaceChildren(img));
  }
}

function chrome() {
  const nav = document.getElementById("nav");
  const items = Object.entries(PAGES).filter(([k, p]) => k !== "login" && p.needs(ctx));
  const current = page();
  nav.replaceChildren(...items.map(([k, p]) => h("a", { href: `#/${k}`, class: k === current ? "active" : "", id: `nav-${k}` }, p.title)));
  const who = document.getElementById("who");
  if (ctx.claims) {
    const roles = ctx.roles();
    const label = `${ctx.claims.sub || "anonymous"}${ctx.claims.tenantId ? ` @ ${ctx.claims.tenantId}` : ""}${roles.length ? ` (${roles.join(", ")})` : ""}`;
    const out = h("button", { type: "button", id: "sign-out" }, "Sign out");
    out.addEventListener("click", async () => {
      session.token = null;
      if (!ctx.hostTenant) session.tenant = null;
      await ctx.refresh();
      ctx.navigate("login");
    });
    who.replaceChildren(h("span", { id: "who-label" }, label), out);
  } else {
    who.replaceChildren();
  }
}

function page() {
  const m = /^#\/([a-z]+)/.exec(location.hash);
  return m && PAGES[m[1]] ? m[1] : null;
}

function banner(text, kind) {
  const b = document.getElementById("banner");
  b.textContent = text || "";
  b.className = `banner${kind ? ` ${kind}` : ""}`;
  b.hidden = !text;
}

async function render() {
  let name = page() || ctx.defaultPage();
  if (!PAGES[name].needs(ctx)) name = ctx.claims ? ctx.defaultPage() : "login";
  if (name === "login" && ctx.claims && ctx.defaultPage() !== "login" && page() !== "login") name = ctx.defaultPage();
  const view = document.getElementById("view");
  chrome();
  banner(ctx.claims && ctx.defaultPage() === "login"
    ? "This token grants nothing here: it names no tenant this address serves and no auditor role."
    : "", "info");
  document.body.dataset.page = name;
  try {
    await PAGES[name].render(ctx, view);
  } catch (e) {
    view.replaceChildren(h("div", { class: "card" }, `Something went wrong: ${e?.message || e}`));
  }
  window.scrollTo(0, 0);
  view.focus({ preventScroll: true });
}

async function start() {
  const c = await call("/console/config.json", { anonymous: true });
  if (c.ok && c.body) ctx.config = c.body;
  const q = new URLSearchParams(location.search);
  if (ctx.config.devMode && q.get("tenant")) session.tenant = q.get("tenant").toLowerCase();
  await ctx.refresh();
  if (!ctx.tenant && !ctx.config.devMode && !ctx.canAudit() && !ctx.claims) {
    banner("This address names no tenant. Open the console on your tenant's domain (for example bank1.financeops.com).", "info");
  }
  window.addEventListener("hashchange", render);
  await render();
}

start();
