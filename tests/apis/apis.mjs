// HTTPS APIs behind the test IdP, for regent's credential-helper tests: the servers that
// git, cargo and a Kubernetes client talk to, each accepting only a token the IdP says is
// active (RFC 7662 introspection, on every request). Node 20, built-ins only.
//
//   node tests/apis/apis.mjs
//
// Environment:
//   APIS_ISSUER     the IdP's issuer (introspection at <issuer>/token/introspection as
//                   regent-introspector); required
//   APIS_GIT_ROOT   a directory of bare repositories served by `git http-backend`
//   APIS_GIT        the git whose http-backend serves them (default: git on PATH)
//
// Prints one JSON line on stdout once listening: {"url": "http://127.0.0.1:PORT"}.
//
// The APIs (each its own resource, with protected resource metadata, RFC 9728, at
// /.well-known/oauth-protected-resource/<api>, and every 401 naming it):
//   /git/<repo>.git/...    git's smart HTTP. Accepts `Authorization: Bearer TOKEN` and, as
//                          forges do, `Basic` with the token as the password. Its 401 offers
//                          both (a Bearer challenge naming the metadata, and Basic).
//   /cargo/index/...       a sparse cargo registry that requires auth: config.json
//                          ("auth-required": true) and the index entry of the crate `demo`.
//                          cargo sends its provider's token as the whole header value.
//   /k8s/api/v1/namespaces a Kubernetes API server's NamespaceList.
//
// Test-only: GET /__test/seen -> [{"api", "path", "scheme" ("bearer" | "basic" | "none"),
// "active" (bool), "status"}] for every API request; POST /__test/reset empties it.

import * as http from 'node:http';
import { spawn } from 'node:child_process';

const HOST = '127.0.0.1';
const ISSUER = (process.env.APIS_ISSUER || '').replace(/\/+$/, '');
if (!ISSUER) throw new Error('APIS_ISSUER is required');
const GIT_ROOT = process.env.APIS_GIT_ROOT || '';
const GIT = process.env.APIS_GIT || 'git';
const INTROSPECTOR = `Basic ${Buffer.from('regent-introspector:introspector-secret').toString('base64')}`;
const APIS = ['git', 'cargo', 'k8s'];
let base = '';
let seen = [];

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
  return status;
}

// The token a request carries, and how: Bearer, or Basic with the token as the password.
function presented(req) {
  const h = req.headers.authorization || '';
  let m = /^Bearer +(\S+) *$/i.exec(h);
  if (m) return { scheme: 'bearer', token: m[1] };
  m = /^Basic +(\S+) *$/i.exec(h);
  if (m) {
    const pair = Buffer.from(m[1], 'base64').toString('utf8');
    const colon = pair.indexOf(':');
    if (colon >= 0) return { scheme: 'basic', token: pair.slice(colon + 1) };
  }
  return { scheme: 'none', token: null };
}

async function active(token) {
  const r = await fetch(`${ISSUER}/token/introspection`, {
    method: 'POST',
    headers: { authorization: INTROSPECTOR, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
    signal: AbortSignal.timeout(10_000),
  });
  if (!r.ok) throw new Error(`introspection answered ${r.status}`);
  return (await r.json()).active === true;
}

const metadataUrl = (api) => `${base}/.well-known/oauth-protected-resource/${api}`;

// git's helpers answer a challenge; the others read the metadata from the first one.
function challenge(api) {
  const bearer = `Bearer realm="${api}", resource_metadata="${metadataUrl(api)}"`;
  return api === 'git' ? [bearer, `Basic realm="${api}"`] : [bearer];
}

// `git http-backend` as a CGI: the request's body in, its headers and body out.
function git(req, res, path, query) {
  const child = spawn(GIT, ['http-backend'], {
    env: {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: GIT_ROOT,
      GIT_HTTP_EXPORT_ALL: '1',
      PATH_INFO: path,
      QUERY_STRING: query,
      REQUEST_METHOD: req.method,
      CONTENT_TYPE: req.headers['content-type'] || '',
      CONTENT_LENGTH: req.headers['content-length'] || '',
      HTTP_GIT_PROTOCOL: req.headers['git-protocol'] || '',
      REMOTE_USER: 'regent',
      REMOTE_ADDR: HOST,
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  // http-backend may be done before it read the whole body: not a crash.
  child.stdin.on('error', () => {});
  req.pipe(child.stdin);
  let head = Buffer.alloc(0);
  let started = false;
  child.stdout.on('data', (chunk) => {
    if (started) { res.write(chunk); return; }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    started = true;
    let status = 200;
    const headers = {};
    for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === 'status') status = Number(value.split(' ')[0]);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end + 4));
  });
  return new Promise((resolve) => {
    child.on('error', (e) => {
      if (!started) { started = true; send(res, 500, `git http-backend: ${e.message}\n`); }
      resolve(500);
    });
    child.on('close', (code) => {
      if (!started) send(res, 500, `git http-backend exited ${code}\n`);
      else res.end();
      resolve(res.statusCode);
    });
  });
}

const CARGO_INDEX = '/cargo/index';
function cargo(res, path) {
  if (path === `${CARGO_INDEX}/config.json`) {
    return send(res, 200, { dl: `${base}/cargo/dl/{crate}-{version}.crate`, api: `${base}/cargo`, 'auth-required': true });
  }
  if (path === `${CARGO_INDEX}/de/mo/demo`) {
    const line = { name: 'demo', vers: '0.1.0', deps: [], cksum: '0'.repeat(64), features: {}, yanked: false };
    return send(res, 200, `${JSON.stringify(line)}\n`);
  }
  return send(res, 404, { errors: [{ detail: 'not found' }] });
}

function k8s(res, path) {
  if (path === '/k8s/api/v1/namespaces') {
    return send(res, 200, {
      kind: 'NamespaceList', apiVersion: 'v1', metadata: {},
      items: [{ metadata: { name: 'default' } }, { metadata: { name: 'regent' } }],
    });
  }
  return send(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 404 });
}

async function handle(req, res) {
  const url = new URL(req.url, base);
  const path = url.pathname;
  if (path === '/__test/seen') return send(res, 200, seen);
  if (path === '/__test/reset' && req.method === 'POST') { seen = []; return send(res, 200, {}); }
  const wk = '/.well-known/oauth-protected-resource/';
  if (path.startsWith(wk) && APIS.includes(path.slice(wk.length))) {
    const api = path.slice(wk.length);
    return send(res, 200, {
      resource: `${base}/${api}`,
      authorization_servers: [ISSUER],
      bearer_methods_supported: ['header'],
    });
  }
  const api = APIS.find((a) => path === `/${a}` || path.startsWith(`/${a}/`));
  if (!api) return send(res, 404, { error: 'not found' });
  const { scheme, token } = presented(req);
  // Recorded in the order requests came, filled in as they are answered.
  const entry = { api, path, scheme, active: false, status: 0 };
  seen.push(entry);
  const ok = token !== null && await active(token).catch((e) => {
    console.error(`apis: introspection failed: ${e.message}`);
    return false;
  });
  entry.active = ok;
  entry.status = 401;
  if (!ok) {
    req.resume();
    const error = token === null ? {} : { error: 'invalid_token' };
    return send(res, 401, { error: 'unauthorized', ...error }, { 'www-authenticate': challenge(api) });
  }
  if (api === 'git') entry.status = await git(req, res, path.slice('/git'.length), url.search.slice(1));
  else if (api === 'cargo') entry.status = cargo(res, path);
  else entry.status = k8s(res, path);
  return entry.status;
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((e) => {
    console.error(`apis: ${e.stack}`);
    if (!res.headersSent) send(res, 500, { error: String(e.message) });
  });
});
// Idle connections are kept longer than any client keeps them in its pool
// (hyper and reqwest: 90 s): the client lets go first, so a request never
// races the server's close of an idle connection (an IncompleteMessage under load).
server.keepAliveTimeout = 120_000;
server.listen(0, HOST, () => {
  base = `http://${HOST}:${server.address().port}`;
  process.stdout.write(`${JSON.stringify({ url: base })}\n`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => server.close(() => process.exit(0)));
