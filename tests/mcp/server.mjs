// Real MCP servers for regent's tests, built with the official SDK
// (@modelcontextprotocol/sdk 1.32): streamable HTTP with sessions and
// resumable event streams, the SDK's bearer-auth middleware and protected
// resource metadata, and every token introspected at the test IdP with its
// audience checked against the server's own URL.
//
//   node tests/mcp/server.mjs
//
// Environment: MCP_ISSUER (the IdP, required), MCP_SERVERS ("s1,s2,s3": one
// server per name, at /NAME/mcp), MCP_PORT (0 = ephemeral).
// Prints one JSON line on stdout once listening:
//   {"port": PORT, "servers": {"s1": "http://127.0.0.1:PORT/s1/mcp", ...}}
//
// Tools: "whoami" (the token's audience, subject and scopes, as the server saw
// them), "echo" {text}, "admin" (needs scope mcp:admin beyond mcp:tools: a 403
// insufficient_scope otherwise, for step-up). A server whose name starts with
// "py" is written as Python SDK servers commonly are: its metadata lists the
// AS with a root slash its issuer lacks, and it answers that 403 as the
// required_scopes option does: without a scope parameter, its metadata's
// scopes_supported naming mcp:admin too. An "echo" of the text
// "cut-in-the-middle" has its answer's event cut halfway by a dropped
// connection (once per session); the event store still has it, for a resume.
// Test endpoints (not MCP):
//   GET  /__test/log                 -> {"requests": [...], "deletes": [...], "gets": [...]}
//       (a GET is logged when its answer starts, so once it is there a 200 stream is open)
//   POST /__test/notify  {"server"}  -> a notifications/tools/list_changed on every open session's GET stream
//   POST /__test/drop-streams {"server"} -> closes every session's GET stream (clients resume)

import { randomUUID } from 'node:crypto';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createMcpExpressApp } from '@modelcontextprotocol/sdk/server/express.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { mcpAuthMetadataRouter, getOAuthProtectedResourceMetadataUrl } from '@modelcontextprotocol/sdk/server/auth/router.js';
import { InvalidTokenError, ServerError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import * as z from 'zod/v4';

console.log = console.info = console.debug = (...args) => console.error(...args);

const ISSUER = process.env.MCP_ISSUER;
if (!ISSUER) throw new Error('MCP_ISSUER is required');
const NAMES = (process.env.MCP_SERVERS || 's1').split(',').filter(Boolean);
const PORT = Number(process.env.MCP_PORT || 0);

const discovery = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
const introspector = 'Basic ' + Buffer.from('regent-introspector:introspector-secret').toString('base64');

const log = { requests: [], deletes: [], gets: [] };

/// An event store that can resume the GET stream too (the SDK's cannot: #943).
class EventStore {
  constructor() { this.seq = 0; this.events = new Map(); }
  async storeEvent(streamId, message) {
    this.seq += 1;
    const id = String(this.seq);
    this.events.set(id, { streamId, message, seq: this.seq });
    return id;
  }
  async getStreamIdForEventId(id) { return this.events.get(id)?.streamId; }
  async replayEventsAfter(lastEventId, { send }) {
    const last = this.events.get(lastEventId);
    if (!last) return '';
    for (const [id, e] of this.events) {
      if (e.streamId === last.streamId && e.seq > last.seq) await send(id, e.message);
    }
    return last.streamId;
  }
}

function verifier(canonical) {
  return {
    async verifyAccessToken(token) {
      const r = await fetch(discovery.introspection_endpoint, {
        method: 'POST',
        headers: { authorization: introspector, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
      });
      if (!r.ok) throw new ServerError(`introspection answered HTTP ${r.status}`);
      const d = await r.json();
      if (!d.active) throw new InvalidTokenError('the token is not active');
      const auds = [d.aud ?? []].flat();
      // The token must be for this server exactly (RFC 8707; MCP: audience validation).
      if (!auds.includes(canonical)) throw new InvalidTokenError(`the token is for ${auds.join(' ') || 'no audience'}, not ${canonical}`);
      return {
        token, clientId: d.client_id, scopes: d.scope ? d.scope.split(' ') : [], expiresAt: d.exp,
        resource: new URL(canonical), extra: { sub: d.sub, aud: d.aud },
      };
    },
  };
}

function makeServer(name) {
  const server = new McpServer({ name: `regent-test-${name}`, version: '1.0.0' });
  server.registerTool('whoami', { description: 'Who the token says the caller is' }, async (extra) => ({
    content: [{ type: 'text', text: JSON.stringify({ server: name, ...extra.authInfo?.extra, scopes: extra.authInfo?.scopes }) }],
  }));
  server.registerTool('echo', { description: 'Echoes text', inputSchema: { text: z.string() } }, async ({ text }) => ({
    content: [{ type: 'text', text }],
  }));
  server.registerTool('admin', { description: 'Needs scope mcp:admin' }, async () => ({
    content: [{ type: 'text', text: 'admin done' }],
  }));
  return server;
}

const app = createMcpExpressApp();
const servers = {};

app.get('/__test/log', (_req, res) => res.json(log));
app.post('/__test/notify', async (req, res) => {
  const s = servers[req.body?.server];
  if (!s) return res.status(404).json({ error: 'no such server' });
  let n = 0;
  for (const { mcp } of s.sessions.values()) { await mcp.server.notification({ method: 'notifications/tools/list_changed' }); n += 1; }
  return res.json({ notified: n });
});
app.post('/__test/drop-streams', (req, res) => {
  const s = servers[req.body?.server];
  if (!s) return res.status(404).json({ error: 'no such server' });
  let n = 0;
  for (const { transport } of s.sessions.values()) { transport.closeStandaloneSSEStream(); n += 1; }
  return res.json({ dropped: n });
});

const listener = app.listen(PORT, '127.0.0.1');
// Idle connections kept longer than the clients' pools (90 s): the client lets go
// first, so a request never races the server's close of an idle connection.
listener.keepAliveTimeout = 120_000;
await new Promise((resolve) => { listener.once('listening', resolve); });
const { port } = listener.address();
const base = `http://127.0.0.1:${port}`;

for (const name of NAMES) {
  const url = new URL(`${base}/${name}/mcp`);
  const canonical = url.href;
  const metadataUrl = getOAuthProtectedResourceMetadataUrl(url);
  const pythonish = name.startsWith('py');
  const scopesSupported = pythonish ? ['mcp:tools', 'mcp:admin'] : ['mcp:tools'];
  // The Python SDK's AnyHttpUrl writes the AS as http://host:port/ (its issuer has no slash).
  const oauthMetadata = pythonish ? { ...discovery, issuer: `${discovery.issuer}/` } : discovery;
  app.use(mcpAuthMetadataRouter({ oauthMetadata, resourceServerUrl: url, scopesSupported, resourceName: name }));
  const sessions = new Map();
  servers[name] = { sessions };
  const auth = requireBearerAuth({ verifier: verifier(canonical), requiredScopes: ['mcp:tools'], resourceMetadataUrl: metadataUrl });
  // Step-up: "admin" needs one more scope than the rest.
  const admin = (req, res, next) => {
    const b = req.body;
    if (b?.method === 'tools/call' && b?.params?.name === 'admin' && !req.auth?.scopes?.includes('mcp:admin')) {
      res.set('WWW-Authenticate', pythonish
        ? `Bearer error="insufficient_scope", error_description="Required scope: mcp:admin", resource_metadata="${metadataUrl}"`
        : `Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", resource_metadata="${metadataUrl}"`);
      return res.status(403).json({ error: 'insufficient_scope', error_description: 'admin needs mcp:admin' });
    }
    return next();
  };
  const record = (req, res, next) => {
    const entry = {
      server: name, http: req.method, method: req.body?.method ?? null,
      session: req.headers['mcp-session-id'] ?? null, version: req.headers['mcp-protocol-version'] ?? null,
      aud: req.auth?.extra?.aud ?? null,
    };
    res.on('finish', () => { entry.status = res.statusCode; });
    log.requests.push(entry);
    if (req.method === 'GET') {
      // Logged once the answer starts, when the SDK has the stream in place: a
      // test that waits for it can notify without racing the stream's setup.
      const writeHead = res.writeHead;
      res.writeHead = function (status, ...rest) {
        log.gets.push({ server: name, last_event_id: req.headers['last-event-id'] ?? null, status });
        return writeHead.call(this, status, ...rest);
      };
    }
    if (req.method === 'DELETE') log.deletes.push({ server: name, session: entry.session });
    const b = req.body;
    if (req.method === 'POST' && b?.method === 'tools/call' && b?.params?.arguments?.text === 'cut-in-the-middle') {
      const write = res.write;
      let cut = false;
      res.write = function (chunk, ...rest) {
        const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
        if (!cut && text.includes('"result"') && text.includes('cut-in-the-middle')) {
          cut = true;
          log.cuts = (log.cuts ?? 0) + 1;
          write.call(this, text.slice(0, Math.floor(text.length / 2)), () => res.socket?.destroy());
          return true;
        }
        return write.call(this, chunk, ...rest);
      };
    }
    next();
  };
  app.all(`/${name}/mcp`, record, auth, admin, async (req, res) => {
    const sid = req.headers['mcp-session-id'];
    let s = sid && sessions.get(sid);
    if (!s) {
      if (sid || req.method !== 'POST' || !isInitializeRequest(req.body)) {
        return res.status(sid ? 404 : 400).json({ jsonrpc: '2.0', error: { code: -32000, message: 'no such session' }, id: null });
      }
      const mcp = makeServer(name);
      const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore: new EventStore(),
        retryInterval: 200,
        onsessioninitialized: (id) => { sessions.set(id, s); },
      });
      s = { mcp, transport };
      transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
      await mcp.connect(transport);
    }
    return s.transport.handleRequest(req, res, req.body);
  });
}

process.stdout.write(`${JSON.stringify({ port, servers: Object.fromEntries(NAMES.map((n) => [n, `${base}/${n}/mcp`])) })}\n`);
process.on('SIGTERM', () => { listener.close(); process.exit(0); });
