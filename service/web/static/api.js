// The page's only way to the server: the /v1 API with the key from sessionStorage.
// The key travels in the Authorization header only: never in a URL, never logged.
const KEY = "patrol.key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
};

async function request(path, { method = "GET", body, params, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    for (const v of [].concat(value)) if (v !== "" && v != null) url.searchParams.append(name, v);
  }
  const headers = { Authorization: `Bearer ${session.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response;
}

export const api = {
  json: async (path, options) => (await request(path, options)).json(),
  text: async (path, options) => (await request(path, options)).text(),
  blob: async (path, options) => (await request(path, options)).blob(), // downloads: a blob: URL, no key in it
  // An image behind the key: fetched with the header, shown through a blob: URL (the caller revokes it).
  imageUrl: async (path, options) => URL.createObjectURL(await (await request(path, options)).blob()),
  me: () => api.json("/v1/me"),
  taxonomy: () => api.json("/v1/taxonomy"),
  regions: () => api.json("/v1/regions?geometry=true"),  // outlines only on request (they can be large)
  issue: (id) => api.json(`/v1/issues/${id}`),
  move: (id, to, reason) => api.json(`/v1/issues/${id}/transitions`, { method: "POST", body: { to, reason } }),
  async issues(filters) {
    // One page is at most 5000 (the API's limit); the office's ledger may hold more.
    const features = [];
    for (let offset = 0; ; ) {
      const page = await api.json("/v1/issues", { params: { ...filters, limit: 5000, offset } });
      features.push(...page.features);
      offset += page.features.length;
      if (offset >= page.total || page.features.length === 0) return { features, total: page.total };
    }
  },
};
