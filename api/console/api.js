// The console's only way to the API: same origin, bearer token from this tab's session
// storage, the dev-mode tenant choice as X-Tenant-ID. The console holds no authority of its
// own: every answer it shows is what the API decided for this token.

const TOKEN_KEY = "tenantgate.token";
const TENANT_KEY = "tenantgate.tenant";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(t) { t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY); },
  // A tenant chosen in dev mode (sent as X-Tenant-ID); null means "resolve from the host".
  get tenant() { return sessionStorage.getItem(TENANT_KEY); },
  set tenant(t) { t ? sessionStorage.setItem(TENANT_KEY, t) : sessionStorage.removeItem(TENANT_KEY); },
};

/** The claims of a JWT, decoded for display only (the API verifies signatures). */
export function claims(token) {
  try {
    const part = token.split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      Array.from(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")))
        .map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0"))
        .join(""),
    );
    const c = JSON.parse(json);
    return typeof c === "object" && c !== null ? c : null;
  } catch {
    return null;
  }
}

/** The error an API problem body describes, as one line. */
export function describe(res) {
  const b = res.body;
  if (b && typeof b === "object" && (b.detail || b.title)) {
    return `${b.title || "Error"}: ${b.detail || ""}`.trim();
  }
  if (res.status === 0) return "The API cannot be reached.";
  return `The API answered ${res.status}.`;
}

/**
 * Calls the API. Returns { ok, status, body, headers }; never throws for HTTP errors, and
 * maps a network failure to status 0.
 */
export async function call(path, { method = "GET", body, headers = {}, anonymous = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (!anonymous && session.token) h.Authorization = `Bearer ${session.token}`;
  if (session.tenant) h["X-Tenant-ID"] = session.tenant;
  if (body !== undefined) h["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    return { ok: false, status: 0, body: null, headers: new Headers() };
  }
  let parsed = null;
  const type = res.headers.get("content-type") || "";
  if (type.includes("json")) {
    try { parsed = await res.json(); } catch { parsed = null; }
  }
  return { ok: res.ok, status: res.status, body: parsed, headers: res.headers };
}

/** A query string of the defined, non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
