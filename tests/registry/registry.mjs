// Fake MCP server registry (registry API v0.1) for regent's end-to-end tests.
// Node 20, built-ins only (node:http, global fetch): no npm dependencies.
//
//   node tests/registry/registry.mjs
//
// Environment:
//   REGISTRY_PORT           port on 127.0.0.1 (default 0 = ephemeral)
//   REGISTRY_ISSUER         IdP issuer; tokens are checked by RFC 7662 introspection at
//                           <issuer>/token/introspection as regent-introspector
//                           (client_secret_basic), on every request, no caching.
//                           Empty: only static tokens are accepted.
//   REGISTRY_SERVERS        number of servers listed (default 7)
//   REGISTRY_PAGE           page size when the client gives no `limit` (default 3);
//                           `limit` is capped at 100
//   REGISTRY_STATIC_TOKENS  comma-separated bearer tokens accepted as they are
//   REGISTRY_PUBLIC=1       no authentication at all
//   REGISTRY_V0_ONLY=1      the /v0.1 routes answer 404; the same API is served under /v0
//   REGISTRY_PRM=1          protected resource metadata (RFC 9728) at
//                           /.well-known/oauth-protected-resource, naming REGISTRY_ISSUER,
//                           and its URL in every 401's WWW-Authenticate (no --issuer needed)
//   REGISTRY_REMOTE         a URL: server-1 lists it as its streamable-http remote
//
// Prints one JSON line on stdout once listening, and nothing else on stdout:
//   {"url": "http://127.0.0.1:PORT", "port": PORT, "pid": PID}
// Logs go to stderr. SIGTERM / SIGINT: clean exit (status 0).
//
// API (PREFIX is /v0.1, or /v0 with REGISTRY_V0_ONLY=1):
//   GET PREFIX/servers?limit=N&cursor=C&search=S
//       -> {"servers": [{"server": {...}, "_meta": {...}}, ...],
//           "metadata": {"count": n, "nextCursor": "..."}}   (nextCursor absent on the last page)
//       `search`: case-insensitive substring of the name. Bad limit / cursor: 400.
//   GET PREFIX/servers/{serverName}/versions/latest     (serverName URL-encoded: a%2Fb)
//   GET PREFIX/servers/{serverName}/versions/{version}
//   GET PREFIX/servers/{serverName}                     (/v0 only)
//       -> {"server": {...}, "_meta": {...}} or 404 {"error": "not found"}
//   Auth on every API route: `Authorization: Bearer <token>`; 401 (+ WWW-Authenticate)
//   when missing or not accepted, 503 when the introspection endpoint cannot be reached
//   or answers garbage. Unknown routes and methods: 404 JSON (no auth check).
//
// Test-only endpoints (never authenticated, never counted):
//   POST /__test/mode   {"forbid": bool, "scope": "registry:write", "redirect_to": "http://..." | null,
//                        "www_authenticate": "..." | ["...", ...] | null}
//       fields optional and sticky. forbid: authenticated API requests get 403
//       insufficient_scope (scope: its scope; www_authenticate: the challenge
//       headers instead, a string or a list). redirect_to: the list route answers 302 to
//       <redirect_to><same path and query>, before any auth check. Answers the mode.
//   GET  /__test/mode   -> the current mode
//   GET  /__test/seen   -> {"requests", "with_authorization", "unauthorized", "forbidden",
//                           "ok", "unavailable", "authorization_values": [...]}
//       counting every non-/__test/ request ("ok" = answered 200).
//   POST /__test/reset  -> zero the counters (the mode is left alone)

import * as http from 'node:http';

const HOST = '127.0.0.1';

const intEnv = (name, dflt, min = 0) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new TypeError(`${name} must be an integer >= ${min}`);
  return n;
};

const PORT = intEnv('REGISTRY_PORT', 0);
const ISSUER = (process.env.REGISTRY_ISSUER || '').replace(/\/+$/, '');
const SERVER_COUNT = intEnv('REGISTRY_SERVERS', 7);
const PAGE = intEnv('REGISTRY_PAGE', 3, 1);
const MAX_LIMIT = 100;
const STATIC_TOKENS = new Set((process.env.REGISTRY_STATIC_TOKENS || '')
  .split(',').map((t) => t.trim()).filter(Boolean));
const PUBLIC = process.env.REGISTRY_PUBLIC === '1';
const V0_ONLY = process.env.REGISTRY_V0_ONLY === '1';
const PRM = process.env.REGISTRY_PRM === '1';
const REMOTE = process.env.REGISTRY_REMOTE || '';
let selfUrl = ''; // set once listening
const PREFIX = V0_ONLY ? '/v0' : '/v0.1';

const INTROSPECTION_URL = ISSUER ? `${ISSUER}/token/introspection` : null;
const INTROSPECTOR_BASIC = `Basic ${Buffer.from('regent-introspector:introspector-secret').toString('base64')}`;
const INTROSPECTION_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------
// The catalogue.
const WHAT = [
  'reads files.',
  'searches the web and returns short summaries of the pages it finds.',
  'bridges a large number of heterogeneous internal ticketing, paging and chat systems into one tool surface, with retries, rate limiting and a very long description to match.',
  'runs SQL.',
  'manages calendar events, invitations and reminders for a team.',
  'converts units.',
  'fetches weather forecasts for any city, with hourly and daily resolution.',
];

const SERVERS = Array.from({ length: SERVER_COUNT }, (_, k) => {
  const i = k + 1;
  return {
    server: {
      name: `io.example/server-${i}`,
      version: `1.0.${i}`,
      description: `Example server number ${i}, which ${WHAT[k % WHAT.length]}`,
      ...(i === 1 && REMOTE ? { remotes: [{ type: 'streamable-http', url: REMOTE }] } : {}),
    },
    _meta: { 'io.modelcontextprotocol.registry/official': { status: 'active', isLatest: true } },
  };
});

// Opaque cursor: base64url of "offset:<n>".
const encodeCursor = (offset) => Buffer.from(`offset:${offset}`).toString('base64url');
function decodeCursor(cursor) {
  const m = /^offset:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------------------------------------
// State.
const newSeen = () => ({
  requests: 0, with_authorization: 0, unauthorized: 0, forbidden: 0, ok: 0, unavailable: 0,
  authorization_values: [],
});
let seen = newSeen();
const mode = { forbid: false, scope: 'registry:write', redirect_to: null, www_authenticate: null };

// ---------------------------------------------------------------------------------------
// Helpers.
function send(res, status, body, headers = {}) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
  return status;
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

// -> {ok: true} | {ok: false, status, body, headers}
async function authenticate(req) {
  if (PUBLIC) return { ok: true };
  const header = req.headers.authorization;
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  if (!m) {
    return {
      ok: false, status: 401,
      body: { error: 'unauthorized', error_description: 'a bearer token is required' },
      headers: { 'www-authenticate': `Bearer realm="registry"${prmParam()}` },
    };
  }
  const token = m[1];
  if (STATIC_TOKENS.has(token)) return { ok: true };
  const invalid = (description) => ({
    ok: false, status: 401,
    body: { error: 'invalid_token', error_description: description },
    headers: { 'www-authenticate': `Bearer realm="registry", error="invalid_token", error_description="${description}"${prmParam()}` },
  });
  if (!INTROSPECTION_URL) return invalid('the token is not accepted (no issuer configured)');

  let answer;
  try {
    const r = await fetch(INTROSPECTION_URL, {
      method: 'POST',
      headers: {
        authorization: INTROSPECTOR_BASIC,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      signal: AbortSignal.timeout(INTROSPECTION_TIMEOUT_MS),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`introspection answered HTTP ${r.status}: ${text.slice(0, 200)}`);
    answer = JSON.parse(text);
  } catch (e) {
    console.error(`registry: introspection failed: ${e.cause?.code || ''} ${e.message}`);
    return {
      ok: false, status: 503,
      body: { error: 'temporarily_unavailable', error_description: 'token introspection failed' },
      headers: {},
    };
  }
  if (answer && answer.active === true) return { ok: true };
  return invalid('the token is not active');
}

// Matches an API route; -> {kind: 'list'} | {kind: 'one', name, version} | null.
function route(method, path) {
  if (method !== 'GET') return null;
  if (!(path === `${PREFIX}/servers` || path.startsWith(`${PREFIX}/servers/`))) return null;
  if (path === `${PREFIX}/servers`) return { kind: 'list' };
  const rest = path.slice(`${PREFIX}/servers/`.length);
  let m = /^(.+)\/versions\/([^/]+)$/.exec(rest);
  let name; let version;
  if (m) { [, name, version] = m; } else if (V0_ONLY && rest !== '') { name = rest; version = 'latest'; } else return null;
  try {
    name = decodeURIComponent(name);
    version = decodeURIComponent(version);
  } catch { return null; }
  return { kind: 'one', name, version };
}

function list(res, query) {
  const search = (query.get('search') || '').toLowerCase();
  const matching = search ? SERVERS.filter((s) => s.server.name.toLowerCase().includes(search)) : SERVERS;
  let limit = PAGE;
  if (query.has('limit')) {
    const raw = query.get('limit');
    limit = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(limit >= 1)) return send(res, 400, { error: 'invalid limit' });
    limit = Math.min(limit, MAX_LIMIT);
  }
  let offset = 0;
  if (query.get('cursor')) {
    offset = decodeCursor(query.get('cursor'));
    if (offset === null) return send(res, 400, { error: 'invalid cursor' });
  }
  const servers = matching.slice(offset, offset + limit);
  const metadata = { count: servers.length };
  if (offset + limit < matching.length) metadata.nextCursor = encodeCursor(offset + limit);
  return send(res, 200, { servers, metadata });
}

function one(res, { name, version }) {
  const entry = SERVERS.find((s) => s.server.name === name
    && (version === 'latest' || s.server.version === version));
  return entry ? send(res, 200, entry) : send(res, 404, { error: 'not found' });
}

// ---------------------------------------------------------------------------------------
async function testHook(req, res, path) {
  if (req.method === 'GET' && path === '/__test/seen') return send(res, 200, seen);
  if (req.method === 'POST' && path === '/__test/reset') {
    seen = newSeen();
    return send(res, 200, seen);
  }
  if (req.method === 'GET' && path === '/__test/mode') return send(res, 200, mode);
  if (req.method === 'POST' && path === '/__test/mode') {
    let body;
    try { body = JSON.parse((await readBody(req)) || '{}'); } catch { body = null; }
    const bad = !body || typeof body !== 'object' || Array.isArray(body)
      || ('forbid' in body && typeof body.forbid !== 'boolean')
      || ('scope' in body && typeof body.scope !== 'string')
      || ('redirect_to' in body && body.redirect_to !== null && typeof body.redirect_to !== 'string')
      || ('www_authenticate' in body && body.www_authenticate !== null
        && typeof body.www_authenticate !== 'string' && !Array.isArray(body.www_authenticate));
    if (bad) return send(res, 400, { error: 'bad mode', example: { forbid: true, scope: 'registry:write', redirect_to: null } });
    if ('forbid' in body) mode.forbid = body.forbid;
    if ('scope' in body) mode.scope = body.scope;
    if ('www_authenticate' in body) mode.www_authenticate = body.www_authenticate;
    if ('redirect_to' in body) mode.redirect_to = body.redirect_to ? body.redirect_to.replace(/\/+$/, '') : null;
    return send(res, 200, mode);
  }
  return send(res, 404, { error: 'not found' });
}

function prmParam() {
  return PRM ? `, resource_metadata="${selfUrl}/.well-known/oauth-protected-resource"` : '';
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://registry.invalid');
  if (PRM && req.method === 'GET' && url.pathname === '/.well-known/oauth-protected-resource') {
    return send(res, 200, { resource: selfUrl, authorization_servers: [ISSUER], scopes_supported: ['registry:read'] });
  }
  // Raw (still percent-encoded) path, so an encoded '/' in a server name stays one segment.
  const path = req.url.split('?')[0];
  if (path.startsWith('/__test/')) return testHook(req, res, path);

  seen.requests += 1;
  if (req.headers.authorization !== undefined) {
    seen.with_authorization += 1;
    seen.authorization_values.push(req.headers.authorization);
  }

  const r = route(req.method, path);
  if (!r) return send(res, 404, { error: 'not found' });

  if (r.kind === 'list' && mode.redirect_to) {
    const location = `${mode.redirect_to}${req.url}`;
    res.writeHead(302, { location, 'content-length': 0 });
    res.end();
    return 302;
  }

  const auth = await authenticate(req);
  if (!auth.ok) {
    if (auth.status === 401) seen.unauthorized += 1;
    if (auth.status === 503) seen.unavailable += 1;
    return send(res, auth.status, auth.body, auth.headers);
  }
  if (mode.forbid) {
    seen.forbidden += 1;
    // www_authenticate: the challenge(s) as given (a list is several headers).
    const challenge = mode.www_authenticate
      ?? `Bearer realm="registry", error="insufficient_scope", scope="${mode.scope}"`;
    return send(res, 403, { error: 'forbidden' }, { 'www-authenticate': challenge });
  }

  const status = r.kind === 'list' ? list(res, url.searchParams) : one(res, r);
  if (status === 200) seen.ok += 1;
  return status;
}

const server = http.createServer((req, res) => {
  handle(req, res).then((status) => {
    console.error(`registry: ${req.method} ${req.url} -> ${status}`);
  }, (e) => {
    console.error(`registry: ${req.method} ${req.url} failed:`, e);
    if (!res.headersSent) send(res, 500, { error: 'internal error' });
    else res.destroy();
  });
});
// Idle connections are kept longer than any client keeps them in its pool
// (hyper and reqwest: 90 s): the client lets go first, so a request never
// races the server's close of an idle connection (an IncompleteMessage under load).
server.keepAliveTimeout = 120_000;

server.on('error', (e) => console.error('registry: server error:', e.message));

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, HOST, resolve);
});
const { port } = server.address();
selfUrl = `http://${HOST}:${port}`;
console.error(`registry: ${PREFIX} API, ${SERVER_COUNT} servers, page ${PAGE}, `
  + `${PUBLIC ? 'public' : `issuer ${ISSUER || '(none)'}, ${STATIC_TOKENS.size} static token(s)`}`);
process.stdout.write(`{"url": "http://${HOST}:${port}", "port": ${port}, "pid": ${process.pid}}\n`);

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
