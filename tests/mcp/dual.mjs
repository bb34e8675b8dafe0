// Real MCP servers on the official TypeScript SDK v2 (@modelcontextprotocol/server
// 2.4.0) that speak both wires on one endpoint: the 2026-07-28 stateless wire
// (per-request `_meta`, server/discover, the MCP-Protocol-Version, Mcp-Method and
// Mcp-Name headers required) and the 2025-11-25 stateful wire (initialize,
// Mcp-Session-Id, the GET stream). The SDK tells them apart (isLegacyRequest).
// Bearer auth with protected resource metadata; a token is introspected at the
// test IdP once and then remembered until it expires, so a request costs the
// server no introspection (the bridge's own cost is what a benchmark sees).
//
//   node tests/mcp/dual.mjs
//
// Environment: MCP_ISSUER (the IdP, required), MCP_SERVERS ("d1,d2": one server
// per name, at /NAME/mcp), MCP_PORT (0 = ephemeral). Prints one JSON line:
//   {"port": PORT, "servers": {"d1": "http://127.0.0.1:PORT/d1/mcp", ...}}
// Tools: "whoami" (the wire, the token's audience, subject and scopes, and
// whether it came with a DPoP proof), "echo" {text}, "admin" (needs mcp:admin:
// the SDK's 403 insufficient_scope).
// DPoP (RFC 9449), checked as a resource server must: a token bound to a key
// (introspection's cnf.jkt) is taken only as `Authorization: DPoP` with a proof
// whose signature, typ, htm, htu, iat (±60 s), jti (never twice), ath and key
// thumbprint hold; never as Bearer. A server named "dpop*" names DPoP in its
// resource metadata (dpop_signing_alg_values_supported); "dpopn*" also wants its nonce
// in each proof (401 use_dpop_nonce with DPoP-Nonce otherwise); "dpopr*" wants it too, and
// gives a new one with every answer it accepts.
// Test endpoint: GET /__test/log -> {"requests": [{server, http, method, version,
// session, mcp_method, mcp_name, status}], "introspections": n}

import { randomUUID, createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';

import {
  McpServer, createMcpHandler, isLegacyRequest, isInitializeRequest,
  OAuthError, OAuthErrorCode, requireScopes,
} from '@modelcontextprotocol/server';
import { NodeStreamableHTTPServerTransport, toNodeHandler, toWebRequest } from '@modelcontextprotocol/node';
import {
  createMcpExpressApp, requireBearerAuth, mcpAuthMetadataRouter, getOAuthProtectedResourceMetadataUrl,
} from '@modelcontextprotocol/express';
import * as z from 'zod/v4';

console.log = console.info = console.debug = (...args) => console.error(...args);

const ISSUER = process.env.MCP_ISSUER;
if (!ISSUER) throw new Error('MCP_ISSUER is required');
const NAMES = (process.env.MCP_SERVERS || 'd1').split(',').filter(Boolean);
const PORT = Number(process.env.MCP_PORT || 0);

const discovery = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
const introspector = 'Basic ' + Buffer.from('regent-introspector:introspector-secret').toString('base64');
const log = { requests: [], introspections: 0, dpop: { accepted: 0, refused: [] } };
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const seenJti = new Set();
const nonces = new Map(); // server -> current nonce

/// The RFC 7638 thumbprint of an EC JWK.
function thumbprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return b64url(createHash('sha256').update(canonical).digest());
}

/// Checks a DPoP proof for `req` carrying `token`; the reason it fails, or null.
function checkProof(req, token, canonical, wantNonce) {
  const proof = req.headers.dpop;
  if (!proof || proof.includes(',')) return 'one DPoP proof is required';
  const [h, c, sig] = proof.split('.');
  let header; let claims;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url'));
    claims = JSON.parse(Buffer.from(c, 'base64url'));
  } catch { return 'the proof is not a JWS'; }
  if (header.typ !== 'dpop+jwt' || header.alg !== 'ES256' || !header.jwk || header.jwk.d) return 'bad proof header';
  const key = createPublicKey({ key: header.jwk, format: 'jwk' });
  const ok = cryptoVerify('sha256', Buffer.from(`${h}.${c}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
  if (!ok) return 'the proof signature does not verify';
  if (claims.htm !== req.method) return `htm ${claims.htm} is not ${req.method}`;
  if (claims.htu !== canonical) return `htu ${claims.htu} is not ${canonical}`;
  if (Math.abs(Date.now() / 1000 - claims.iat) > 60) return 'iat is out of the window';
  if (!claims.jti || seenJti.has(claims.jti)) return 'the proof was used before (jti)';
  if (claims.ath !== b64url(createHash('sha256').update(token).digest())) return 'ath does not match the token';
  if (wantNonce && claims.nonce !== wantNonce) return 'use_dpop_nonce';
  seenJti.add(claims.jti);
  return { jkt: thumbprint(header.jwk) };
}

/// Introspects a token once; the answer is kept until the token expires.
const known = new Map();
async function introspect(token) {
  const hit = known.get(token);
  if (hit && hit.exp * 1000 > Date.now()) return hit;
  log.introspections += 1;
  const r = await fetch(discovery.introspection_endpoint, {
    method: 'POST',
    headers: { authorization: introspector, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
  });
  if (!r.ok) throw new OAuthError(OAuthErrorCode.ServerError, `introspection answered HTTP ${r.status}`);
  const d = await r.json();
  if (d.active) known.set(token, d);
  return d;
}

function verifier(canonical) {
  return {
    async verifyAccessToken(token) {
      const d = await introspect(token);
      if (!d.active) throw new OAuthError(OAuthErrorCode.InvalidToken, 'the token is not active');
      const auds = [d.aud ?? []].flat();
      if (!auds.includes(canonical)) {
        throw new OAuthError(OAuthErrorCode.InvalidToken, `the token is for ${auds.join(' ') || 'no audience'}, not ${canonical}`);
      }
      return {
        token, clientId: d.client_id, scopes: d.scope ? d.scope.split(' ') : [], expiresAt: d.exp,
        resource: new URL(canonical), extra: { sub: d.sub, aud: d.aud },
      };
    },
  };
}

function makeServer(name, wire) {
  const server = new McpServer({ name: `regent-test-${name}`, version: '1.0.0' });
  server.registerTool('whoami', { description: 'Who the token says the caller is' }, async (ctx) => ({
    content: [{ type: 'text', text: JSON.stringify({ server: name, wire, ...ctx.http?.authInfo?.extra, scopes: ctx.http?.authInfo?.scopes }) }],
  }));
  server.registerTool('echo', { description: 'Echoes text', inputSchema: z.object({ text: z.string() }) }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));
  server.registerTool('admin', { description: 'Needs scope mcp:admin', scopeChallenge: requireScopes('mcp:tools', 'mcp:admin') }, async () => ({
    content: [{ type: 'text', text: 'admin done' }],
  }));
  return server;
}

const app = createMcpExpressApp({ jsonLimit: '4mb' });
app.get('/__test/log', (_req, res) => res.json(log));
const listener = app.listen(PORT, '127.0.0.1');
// Idle connections kept longer than the clients' pools (90 s): the client lets go
// first, so a request never races the server's close of an idle connection.
listener.keepAliveTimeout = 120_000;
await new Promise((resolve) => { listener.once('listening', resolve); });
const { port } = listener.address();
const base = `http://127.0.0.1:${port}`;

for (const name of NAMES) {
  const url = new URL(`${base}/${name}/mcp`);
  if (name.startsWith('dpop')) {
    // Its metadata names DPoP (RFC 9728 §2), so a client's `auto` binds its tokens.
    app.get(new URL(getOAuthProtectedResourceMetadataUrl(url)).pathname, (_req, res) => res.json({
      resource: url.href, authorization_servers: [discovery.issuer], scopes_supported: ['mcp:tools'],
      resource_name: name, dpop_signing_alg_values_supported: ['ES256'],
    }));
  }
  app.use(mcpAuthMetadataRouter({ oauthMetadata: discovery, resourceServerUrl: url, scopesSupported: ['mcp:tools'], resourceName: name }));
  const auth = requireBearerAuth({
    verifier: verifier(url.href), requiredScopes: ['mcp:tools'], resourceMetadataUrl: getOAuthProtectedResourceMetadataUrl(url),
  });
  // 2026-07-28: a server per request (the stateless wire keeps nothing between them).
  const modern = toNodeHandler(createMcpHandler(() => makeServer(name, '2026-07-28'), { legacy: 'reject' }));
  // DPoP, before the SDK's bearer check (which then sees the token as Bearer).
  const dpop = async (req, res, next) => {
    const refuse = (error, description) => {
      log.dpop.refused.push({ server: name, error, description });
      const nonce = nonces.get(name);
      if (nonce) res.set('DPoP-Nonce', nonce);
      res.set('WWW-Authenticate', `DPoP error="${error}", error_description="${description}", algs="ES256"`);
      return res.status(401).json({ error, error_description: description });
    };
    const auth = req.headers.authorization ?? '';
    const [scheme, token] = auth.split(' ');
    if (!token) return next();
    const d = await introspect(token);
    const bound = d.cnf?.jkt;
    if (scheme.toLowerCase() === 'bearer') {
      if (bound) return refuse('invalid_token', 'the token is bound to a key: present it with a DPoP proof');
      req.dpop = false;
      return next();
    }
    if (scheme.toLowerCase() !== 'dpop') return next();
    const wantsNonce = name.startsWith('dpopn') || name.startsWith('dpopr');
    if (wantsNonce && !nonces.has(name)) nonces.set(name, randomUUID());
    const checked = checkProof(req, token, url.href, wantsNonce ? nonces.get(name) : null);
    if (checked === 'use_dpop_nonce') return refuse('use_dpop_nonce', 'a nonce is required');
    if (typeof checked === 'string') return refuse('invalid_dpop_proof', checked);
    if (bound && checked.jkt !== bound) return refuse('invalid_dpop_proof', 'the proof key is not the one the token is bound to');
    log.dpop.accepted += 1;
    if (name.startsWith('dpopr')) {
      // A new nonce on every answer (RFC 9449 §9); the last one given is the only one taken.
      const next = randomUUID();
      nonces.set(name, next);
      res.set('DPoP-Nonce', next);
    }
    req.headers.authorization = `Bearer ${token}`;
    req.dpop = true;
    return next();
  };
  const sessions = new Map();
  const record = (req, res, next) => {
    const entry = {
      server: name, http: req.method, method: req.body?.method ?? null,
      version: req.headers['mcp-protocol-version'] ?? null, session: req.headers['mcp-session-id'] ?? null,
      mcp_method: req.headers['mcp-method'] ?? null, mcp_name: req.headers['mcp-name'] ?? null,
      scheme: (req.headers.authorization ?? '').split(' ')[0] || null,
    };
    res.on('finish', () => { entry.status = res.statusCode; });
    log.requests.push(entry);
    next();
  };
  app.all(`/${name}/mcp`, record, dpop, auth, async (req, res) => {
    try {
      if (req.method === 'POST' && !(await isLegacyRequest(await toWebRequest(req, req.body), req.body))) {
        return await modern(req, res, req.body);
      }
      const sid = req.headers['mcp-session-id'];
      let s = sid && sessions.get(sid);
      if (!s) {
        if (sid || req.method !== 'POST' || !isInitializeRequest(req.body)) {
          return res.status(sid ? 404 : 400).json({ jsonrpc: '2.0', error: { code: -32000, message: 'no such session' }, id: null });
        }
        const transport = new NodeStreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => { sessions.set(id, s); },
        });
        s = { mcp: makeServer(name, '2025-11-25'), transport };
        transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
        await s.mcp.connect(transport);
      }
      return await s.transport.handleRequest(req, res, req.body);
    } catch (e) {
      console.error(e);
      if (!res.headersSent) res.status(500).json({ jsonrpc: '2.0', error: { code: -32603, message: String(e?.message ?? e) }, id: null });
      return undefined;
    }
  });
}

process.stdout.write(`${JSON.stringify({ port, servers: Object.fromEntries(NAMES.map((n) => [n, `${base}/${n}/mcp`])) })}\n`);
process.on('SIGTERM', () => { listener.close(); process.exit(0); });
