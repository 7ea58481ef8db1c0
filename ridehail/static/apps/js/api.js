// The public REST API, as any client calls it: JSON in and out, bearer tokens, and
// application/problem+json errors turned into an ApiError that knows which field each
// message is about. The token lives in localStorage under the app's role, so a reload (or
// a dropped connection) keeps the session; logging out revokes it on the server first.

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    // field -> message, from the problem's `errors: [{field, message}]`
    this.fields = {};
    for (const e of problem.errors || []) {
      if (e && e.field && !(e.field in this.fields)) this.fields[e.field] = e.message;
    }
  }
}

export class Session {
  constructor(role) {
    this.role = role;
    this.key = `ridehail.${role}`;
  }

  load() {
    try {
      return JSON.parse(localStorage.getItem(this.key) || "null");
    } catch {
      return null;
    }
  }

  get token() {
    const s = this.load();
    return s ? s.token : null;
  }

  save(data) {
    localStorage.setItem(this.key, JSON.stringify({ ...(this.load() || {}), ...data }));
  }

  clear() {
    localStorage.removeItem(this.key);
  }
}

export async function api(method, path, { token = null, body = undefined } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (exc) {
    throw new ApiError(0, { title: "Offline", detail: "the server cannot be reached; check the connection" });
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (!resp.ok) {
    const retry = resp.headers.get("Retry-After");
    const problem = data && typeof data === "object" ? data : {};
    if (resp.status === 429 && retry && problem.detail) problem.detail += ` (retry in ${retry} s)`;
    throw new ApiError(resp.status, problem);
  }
  return data;
}

// A WebSocket or EventSource cannot carry an Authorization header: the edge takes the token
// as `?access_token=` (and redacts it from its logs).
export function withToken(path, token) {
  const sep = path.includes("?") ? "&" : "?";
  return `${path}${sep}access_token=${encodeURIComponent(token)}`;
}

export async function logOut(session) {
  const token = session.token;
  session.clear();
  if (token) {
    try {
      await api("DELETE", "/v1/sessions/current", { token });
    } catch (exc) {
      // already revoked or expired: the browser has forgotten it either way
      if (!(exc instanceof ApiError) || exc.status === 0) throw exc;
    }
  }
}
