// Test identity provider for regent's end-to-end tests (oidc-provider 9.x).
//
//   node tests/idp/idp.mjs
//
// Environment: IDP_PORT (0 = ephemeral), IDP_HOST (127.0.0.1), IDP_TLS_CERT and IDP_TLS_KEY
// (PEM files: serve HTTPS, the issuer is https://), IDP_TLS_CLIENT_CA (with them: every
// connection must present a client certificate that CA issued: mutual TLS), IDP_ACCESS_TTL (60 s),
// IDP_REFRESH_TTL (3600 s), IDP_DEVICE_INTERVAL (1 s), IDP_NO_REFRESH (1 = never issue
// refresh tokens), IDP_REVOKE_ON_ROTATION (1 = a successful refresh revokes the access
// tokens issued before it in that grant, as some authorization servers do),
// IDP_NO_REVOCATION (1 = no revocation endpoint), IDP_RFC8414 ("" = no RFC 8414 document,
// as oidc-provider; "no-revocation" = an RFC 8414 document that omits the revocation
// endpoint, which only the OpenID configuration names).
//
// Quirks of real identity providers, each one switch (README: the IdP guides):
//   IDP_NO_PKCE_METADATA=1  the metadata omits code_challenge_methods_supported although
//                           S256 is required and works (Microsoft Entra ID)
//   IDP_AUDIENCE=1          the API a token is for is named by `audience` on the
//                           authorization request, not `resource` (Auth0)
//   IDP_EXACT_PORT=N        client regent-exact allows exactly http://127.0.0.1:N/callback,
//                           no other port (Okta, and any IdP that matches redirect URIs exactly)
//   IDP_REQUIRE_NONCE=1     an authorization request for `openid` without a nonce is refused
//                           with invalid_request "nonce required"
//   IDP_DATE_SKEW=N         every answer's Date header is N seconds ahead of the real time
//                           (negative: behind), as from a server whose clock is off
//   IDP_DPOP_NONCE=1        every DPoP proof at the token endpoint must carry the server's
//                           nonce (RFC 9449 §8): one without is answered use_dpop_nonce with a
//                           DPoP-Nonce header (GET /__test/counts: "use_dpop_nonce")
// Clients besides regent-test (public, native, every grant):
//   regent-nodevice  public, without the device grant (Keycloak's switch left off):
//                    a device login answers unauthorized_client
//   regent-secret    an "installed app" client with a secret that is not confidential
//   regent-pss       client credentials, private_key_jwt signed PS256 only (its RSA key:
//                    GET /__test/client-key)
//                    (Google): client_secret_post, secret "installed-app-secret"
//   regent-exact     public, redirect URI matched exactly (IDP_EXACT_PORT)
//   regent-basic     confidential (client_secret_basic, secret "basic-secret"): for
//                    oidc-agent, which the benchmark compares `regent token` with
//   regent-ent       public, native, every user grant, RFC 8693 token exchange and RFC
//                    7523 jwt-bearer: the client at the enterprise IdP (an ID token for
//                    an ID-JAG), and a workload's client
//   regent-jag       confidential (client_secret_basic, secret "jag-secret"), RFC 7523
//                    jwt-bearer only: the client at an MCP server's AS that redeems
//                    ID-JAGs and workload tokens
//
// Grants oidc-provider does not have, added here (with its DPoP check and binding):
//   token exchange (RFC 8693): an ID token of this IdP (issued to the client asking) for
//     an ID-JAG (requested_token_type urn:ietf:params:oauth:token-type:id-jag), ES256,
//     naming `audience` and `resource`; a DPoP proof puts its key in the ID-JAG's cnf.jkt
//   jwt-bearer (RFC 7523): an ID-JAG, or a workload token, with aud = this issuer, for an
//     access token for `resource` (opaque, introspectable); an ID-JAG bound to a key is
//     redeemed only with a proof of that key; a proof binds the access token
//
// Prints one JSON line on stdout once listening:
//   {"issuer": "http://127.0.0.1:PORT", "port": PORT, "pid": PID}
// and nothing else on stdout afterwards.
//
// Test-only endpoints (not part of any spec):
//   GET  /__test/counts  -> {"token": {<grant_type>: n}, "revocation": n,
//                           "device_authorization": n, "introspection": n}
//   GET  /__test/issued  -> every access, refresh and ID token value issued so far
//   GET  /__test/refresh-tokens -> the refresh tokens issued so far, oldest first
//   GET  /__test/rotations -> every refresh-token rotation: [{"from": RT, "to": RT}]
//   GET  /__test/client-key -> regent-pss's private key, PKCS#8 PEM
//   GET  /__test/id-jags -> every ID-JAG issued: [{"sub", "aud", "resource", "jkt"}] (jkt: the
//                           key it is bound to, or null)
//   GET  /__test/workload-token?sub=S -> a workload identity JWT (ES256, iss ISSUER/workload,
//                           aud ISSUER, 10 minutes), as a platform would project it
//   GET  /__test/replays -> refresh tokens presented again after their rotation (each
//                           revoked its grant: reuse detection)
//   POST /__test/release -> answers every token request held by the "hold" fault
//   POST /__test/reset   -> zero the counters (the fault mode is left alone)
//   POST /__test/destroy-access-token {"token": AT} -> that access token alone is revoked
//   POST /__test/fault   {"mode": "none"|"500"|"html"|"truncated"|"slow"|"slow_down"|"down"|"hold"|"hostile_device"|"empty_400",
//                         "delay_ms": 5000, "times": n}
//     "hold" keeps each affected token request waiting until POST /__test/release;
//     /__test/counts says how many wait ("held").
//     Faults hit only POST <token endpoint> (any grant type), except "down", which
//     drops the connection of every request other than /__test/*, and
//     "hostile_device", which makes the device authorization answer show a
//     javascript: link and a code with an escape sequence. "times" (optional)
//     makes the fault apply to the next n affected requests only, then "none" again.
//
// Signals: SIGUSR2 toggles an outage: the server stops listening (connections are refused,
// as for an IdP that is down, while every grant and token stays in memory), and the next
// SIGUSR2 listens again on the same port.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as querystring from 'node:querystring';

import Provider, { errors } from 'oidc-provider';
// The provider's own DPoP check and binding, for the two grants it does not have (below).
// Imported by path: the version is pinned in package.json.
import validateDpop, { checkDpopReplay } from 'oidc-provider/lib/helpers/validate_dpop.js';
import { applyDpopBinding } from 'oidc-provider/lib/helpers/grant_common.js';

// oidc-provider prints its notices with console.info (stdout); stdout carries only the
// ready line, so send everything else to stderr.
console.log = console.info = console.debug = (...args) => console.error(...args);

const env = (name, dflt) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`${name} must be a non-negative integer`);
  return n;
};

const HOST = process.env.IDP_HOST || '127.0.0.1';
const PORT = env('IDP_PORT', 0);
const ACCESS_TTL = env('IDP_ACCESS_TTL', 60);
const REFRESH_TTL = env('IDP_REFRESH_TTL', 3600);
const DEVICE_INTERVAL = env('IDP_DEVICE_INTERVAL', 1);
const NO_REFRESH = process.env.IDP_NO_REFRESH === '1'; // issue no refresh tokens at all
const REVOKE_ON_ROTATION = process.env.IDP_REVOKE_ON_ROTATION === '1';
const NO_REVOCATION = process.env.IDP_NO_REVOCATION === '1';
const RFC8414 = process.env.IDP_RFC8414 || '';
const NO_PKCE_METADATA = process.env.IDP_NO_PKCE_METADATA === '1';
const AUDIENCE = process.env.IDP_AUDIENCE === '1';
// Refuse an authorization request for `openid` without a nonce, as some OpenID
// Providers do (the ID token's replay defence).
const REQUIRE_NONCE = process.env.IDP_REQUIRE_NONCE === '1';
const DPOP_NONCE = process.env.IDP_DPOP_NONCE === '1';
const DATE_SKEW = Number(process.env.IDP_DATE_SKEW || 0);
const EXACT_PORT = env('IDP_EXACT_PORT', 0);

const PUBLIC_CLIENT = 'regent-test';
const INTROSPECTOR = 'regent-introspector';

// ---------------------------------------------------------------------------------------
// Listen first (the port may be ephemeral), then build the provider for that issuer.
let handler = (_req, res) => { res.statusCode = 503; res.end(); };
const TLS_CERT = process.env.IDP_TLS_CERT || '';
const TLS_CLIENT_CA = process.env.IDP_TLS_CLIENT_CA || '';
const server = TLS_CERT
  ? https.createServer({
    cert: fs.readFileSync(TLS_CERT),
    key: fs.readFileSync(process.env.IDP_TLS_KEY),
    ...(TLS_CLIENT_CA
      ? { ca: fs.readFileSync(TLS_CLIENT_CA), requestCert: true, rejectUnauthorized: true }
      : {}),
  }, (req, res) => handler(req, res))
  : http.createServer((req, res) => handler(req, res));
// Idle connections are kept longer than any client keeps them in its pool
// (hyper and reqwest: 90 s): the client lets go first, so a request never
// races the server's close of an idle connection (an IncompleteMessage under load).
server.keepAliveTimeout = 120_000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, HOST, resolve);
});
const { port } = server.address();
const issuerHost = ['0.0.0.0', '::', ''].includes(HOST) ? '127.0.0.1'
  : HOST.includes(':') ? `[${HOST}]` : HOST;
const issuer = `${TLS_CERT ? 'https' : 'http'}://${issuerHost}:${port}`;

// Fresh signing key per run (avoids the provider's shared development keystore).
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'idp-rs256', alg: 'RS256', use: 'sig' };
// Client regent-pss authenticates with private_key_jwt signed PS256 only; its key is
// made here and handed to tests by GET /__test/client-key.
const pss = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const pssJwk = { ...pss.publicKey.export({ format: 'jwk' }), kid: 'regent-pss', alg: 'PS256', use: 'sig' };
// The keys of the JWTs the jwt-bearer grant trusts: a workload platform's, and ID-JAGs'.
const workloadKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jagKey = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ID_JAG = 'urn:ietf:params:oauth:token-type:id-jag';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: PUBLIC_CLIENT,
      token_endpoint_auth_method: 'none',
      application_type: 'native', // http loopback redirect URIs match on any port (RFC 8252 7.3)
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      client_id: 'regent-nodevice',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      client_id: 'regent-secret',
      client_secret: 'installed-app-secret',
      token_endpoint_auth_method: 'client_secret_post',
      application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      client_id: 'regent-basic',
      client_secret: 'basic-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://localhost:4242/'],
    },
    ...(EXACT_PORT ? [{
      client_id: 'regent-exact',
      token_endpoint_auth_method: 'none',
      application_type: 'web', // redirect URIs match exactly, port included
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [`http://127.0.0.1:${EXACT_PORT}/callback`],
    }] : []),
    {
      client_id: 'regent-pss',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'PS256',
      jwks: { keys: [pssJwk] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'regent-ent',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code', TOKEN_EXCHANGE, JWT_BEARER],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      client_id: 'regent-jag',
      client_secret: 'jag-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [JWT_BEARER],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: INTROSPECTOR,
      client_secret: 'introspector-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ['regent-test-idp-cookie-key-1'] },
  responseTypes: ['code'], // no implicit / hybrid
  scopes: ['openid', 'offline_access', 'profile', 'email', 'registry:read', 'mcp:tools', 'mcp:admin'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  // devInteractions accept any login/password; the login becomes the subject.
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, name: sub, preferred_username: sub, email: `${sub}@example.test`, email_verified: true };
      },
    };
  },
  pkce: { required: (_ctx, client) => client.clientAuthMethod === 'none' }, // S256 is the only method
  // Default policy made explicit: refresh token iff the client may refresh and offline_access
  // was granted. The code flow keeps offline_access only with prompt=consent; the device
  // authorization endpoint does not take `prompt`, so offline_access survives there.
  issueRefreshToken: async (_ctx, client, source) => !NO_REFRESH
    && client.grantTypeAllowed('refresh_token')
    && source.scopes.has('offline_access'),
  rotateRefreshToken: true, // rotate on every use; reusing a rotated token revokes the grant
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL || ACCESS_TTL,
    RefreshToken: () => REFRESH_TTL,
    AuthorizationCode: () => 60,
    DeviceCode: () => 600,
    IdToken: () => 3600,
    Interaction: () => 3600,
    Session: () => 14 * 24 * 3600,
    Grant: () => 14 * 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true },
    dPoP: DPOP_NONCE
      ? { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true }
      : { enabled: true },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    // Clients may revoke only their own tokens (others: silent 200, nothing revoked).
    // Revoking a refresh token revokes its whole grant (all ATs/RTs); revoking an AT doesn't.
    revocation: { enabled: !NO_REVOCATION, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
    introspection: {
      enabled: true,
      // The introspector may introspect any token; other clients only their own.
      allowedPolicy: async (ctx, client, token) => client.clientId === INTROSPECTOR
        || token.clientId === client.clientId,
    },
    // RFC 8707: without `resource` tokens stay opaque (OIDC scopes, usable at userinfo).
    // With `resource=<absolute URI>` the access token has aud=<resource> and only the
    // resource server's scopes (registry:read, mcp:tools, mcp:admin). For the fixtures on
    // 127.0.0.1 (the registry, the MCP servers) it is opaque, so they can introspect it;
    // for any other resource an RS256 JWT (verify with the jwks_uri).
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => ({
        scope: 'registry:read mcp:tools mcp:admin',
        audience: resource,
        accessTokenFormat: new URL(resource).hostname === '127.0.0.1' ? 'opaque' : 'jwt',
        accessTokenTTL: ACCESS_TTL,
      }),
    },
    // RFC 7591, open: MCP clients register themselves.
    registration: { enabled: true },
  },
});

// ---------------------------------------------------------------------------------------
// Token exchange for an ID-JAG, and the jwt-bearer grant (see the header).
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
function signJwt(key, typ, claims) {
  const input = `${b64({ alg: 'ES256', typ })}.${b64(claims)}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}
// The claims of `jwt` if `key` signed it (ES256, or RS256 for the IdP's own ID tokens).
function verifyJwt(jwt, key, alg) {
  const parts = String(jwt ?? '').split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    if (header.alg !== alg) return null;
    const input = Buffer.from(`${parts[0]}.${parts[1]}`);
    const sig = Buffer.from(parts[2], 'base64url');
    const ok = alg === 'ES256'
      ? crypto.verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, sig)
      : crypto.verify('sha256', input, key, sig);
    return ok ? JSON.parse(Buffer.from(parts[1], 'base64url')) : null;
  } catch {
    return null;
  }
}
const idTokenKey = crypto.createPublicKey(privateKey);
const idJags = [];
const now = () => Math.floor(Date.now() / 1000);
const audOf = (claims) => [claims.aud ?? []].flat();

provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const p = ctx.oidc.params;
  if (p.requested_token_type !== ID_JAG || p.subject_token_type !== ID_TOKEN_TYPE) {
    throw new errors.InvalidRequest('this IdP exchanges an ID token for an ID-JAG only');
  }
  const idt = verifyJwt(p.subject_token, idTokenKey, 'RS256');
  if (!idt || idt.iss !== issuer || !audOf(idt).includes(ctx.oidc.client.clientId) || idt.exp < now()) {
    throw new errors.InvalidGrant('the subject token is not a valid ID token of this IdP for this client');
  }
  const dPoP = await validateDpop(provider, ctx);
  if (dPoP) await checkDpopReplay(provider, ctx, dPoP, ctx.oidc.client.clientId);
  const jag = signJwt(jagKey.privateKey, 'oauth-id-jag+jwt', {
    iss: issuer, sub: idt.sub, aud: p.audience, resource: p.resource, scope: p.scope,
    jti: crypto.randomUUID(), iat: now(), exp: now() + 300,
    ...(dPoP ? { cnf: { jkt: dPoP.thumbprint } } : {}),
  });
  idJags.push({ sub: idt.sub, aud: p.audience, resource: p.resource ?? null, jkt: dPoP?.thumbprint ?? null });
  ctx.body = { access_token: jag, issued_token_type: ID_JAG, token_type: 'N_A', expires_in: 300 };
}, ['requested_token_type', 'subject_token', 'subject_token_type', 'audience', 'resource', 'scope']);

provider.registerGrantType(JWT_BEARER, async (ctx) => {
  const p = ctx.oidc.params;
  const claims = verifyJwt(p.assertion, workloadKey.publicKey, 'ES256')
    ?? verifyJwt(p.assertion, jagKey.publicKey, 'ES256');
  if (!claims || !audOf(claims).includes(issuer) || claims.exp < now()) {
    throw new errors.InvalidGrant('the assertion is not a JWT this AS trusts, for it, unexpired');
  }
  const dPoP = await validateDpop(provider, ctx);
  if (claims.cnf?.jkt && claims.cnf.jkt !== dPoP?.thumbprint) {
    throw new errors.InvalidGrant('the ID-JAG is bound to a key (DPoP) this request does not prove');
  }
  const { client } = ctx.oidc;
  const resource = p.resource ?? claims.resource;
  const scope = (p.scope ?? claims.scope ?? '').split(' ').filter(Boolean).join(' ') || undefined;
  const grant = new provider.Grant({ accountId: claims.sub, clientId: client.clientId });
  if (resource && scope) grant.addResourceScope(resource, scope);
  const grantId = await grant.save();
  const at = new provider.AccessToken({ accountId: claims.sub, client, grantId, gty: 'jwt_bearer', scope });
  if (resource) {
    at.resourceServer = new provider.ResourceServer(resource, {
      scope: 'registry:read mcp:tools mcp:admin', audience: resource,
      accessTokenFormat: 'opaque', accessTokenTTL: ACCESS_TTL,
    });
  }
  await applyDpopBinding(provider, ctx, dPoP, at);
  const value = await at.save();
  issued.push(value);
  ctx.body = { access_token: value, token_type: at.tokenType, expires_in: at.expiration, scope };
}, ['assertion', 'scope', 'resource']);

// ---------------------------------------------------------------------------------------
// Test hooks. provider.use() inserts middleware ahead of the provider's own router.
const paths = {
  token: provider.pathFor('token'),
  revocation: NO_REVOCATION ? undefined : provider.pathFor('revocation'),
  introspection: provider.pathFor('introspection'),
  device_authorization: provider.pathFor('device_authorization'),
};

const newCounts = () => ({ token: {}, revocation: 0, device_authorization: 0, introspection: 0, held: 0, use_dpop_nonce: 0 });
let counts = newCounts();
// Every token value the token endpoint handed out, so tests can look for leaks.
const issued = [];
const refreshTokens = [];
const rotations = [];
const replays = [];
// Opaque access tokens by grant, for IDP_REVOKE_ON_ROTATION.
const accessByGrant = new Map();
let fault = { mode: 'none', delay_ms: 0, times: undefined };
const FAULT_MODES = new Set(['none', '500', 'html', 'truncated', 'slow', 'slow_down', 'down', 'hold', 'hostile_device', 'empty_400']);
// Token requests held by the "hold" fault, released by POST /__test/release.
let held = [];

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function json(ctx, status, body) {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.body = JSON.stringify(body);
}

// Consumes one use of the current fault; returns the mode to apply to this request.
function takeFault() {
  const { mode } = fault;
  if (mode !== 'none' && fault.times !== undefined && --fault.times <= 0) {
    fault = { mode: 'none', delay_ms: 0, times: undefined };
  }
  return mode;
}

provider.use(async (ctx, next) => {
  if (DATE_SKEW) ctx.set('Date', new Date(Date.now() + DATE_SKEW * 1000).toUTCString());
  // --- control endpoints -------------------------------------------------------------
  if (ctx.path.startsWith('/__test/')) {
    if (ctx.method === 'GET' && ctx.path === '/__test/counts') return json(ctx, 200, counts);
    if (ctx.method === 'GET' && ctx.path === '/__test/issued') return json(ctx, 200, issued);
    if (ctx.method === 'GET' && ctx.path === '/__test/refresh-tokens') return json(ctx, 200, refreshTokens);
    if (ctx.method === 'GET' && ctx.path === '/__test/rotations') return json(ctx, 200, rotations);
    if (ctx.method === 'GET' && ctx.path === '/__test/replays') return json(ctx, 200, replays);
    if (ctx.method === 'GET' && ctx.path === '/__test/id-jags') return json(ctx, 200, idJags);
    if (ctx.method === 'GET' && ctx.path === '/__test/workload-token') {
      const sub = new URLSearchParams(ctx.querystring).get('sub') || 'workload';
      ctx.type = 'text/plain';
      ctx.body = signJwt(workloadKey.privateKey, 'JWT', {
        iss: `${issuer}/workload`, sub, aud: issuer, iat: now(), exp: now() + 600,
      });
      return undefined;
    }
    if (ctx.method === 'GET' && ctx.path === '/__test/client-key') {
      ctx.type = 'application/x-pem-file';
      ctx.body = pss.privateKey.export({ format: 'pem', type: 'pkcs8' });
      return undefined;
    }
    if (ctx.method === 'POST' && ctx.path === '/__test/release') {
      const n = held.length;
      for (const release of held) release();
      held = [];
      return json(ctx, 200, { released: n });
    }
    if (ctx.method === 'POST' && ctx.path === '/__test/reset') {
      counts = newCounts();
      return json(ctx, 200, counts);
    }
    if (ctx.method === 'POST' && ctx.path === '/__test/fault') {
      let body;
      try { body = JSON.parse((await readBody(ctx.req)) || '{}'); } catch { body = null; }
      if (!body || !FAULT_MODES.has(String(body.mode ?? 'none'))) {
        return json(ctx, 400, { error: 'bad fault', modes: [...FAULT_MODES] });
      }
      fault = {
        mode: String(body.mode ?? 'none'),
        delay_ms: Number(body.delay_ms ?? 5000),
        times: body.times === undefined ? undefined : Number(body.times),
      };
      return json(ctx, 200, fault);
    }
    if (ctx.method === 'POST' && ctx.path === '/__test/destroy-access-token') {
      // Revokes one access token alone. (RFC 7009 revocation of an access token
      // also ends its grant in oidc-provider; this leaves the refresh token alive,
      // as an IdP that revokes single access tokens would.)
      let body;
      try { body = JSON.parse((await readBody(ctx.req)) || '{}'); } catch { body = {}; }
      const at = await provider.AccessToken.find(String(body.token ?? ''));
      if (!at) return json(ctx, 404, { error: 'no such access token' });
      await at.destroy();
      return json(ctx, 200, { destroyed: true });
    }
    return json(ctx, 404, { error: 'not_found' });
  }

  if (NO_PKCE_METADATA && ctx.method === 'GET' && ctx.path.startsWith('/.well-known/')) {
    await next();
    if (ctx.body && typeof ctx.body === 'object') {
      const { code_challenge_methods_supported: _omitted, ...rest } = ctx.body;
      ctx.body = rest;
    }
    return undefined;
  }
  if (REQUIRE_NONCE && ctx.method === 'GET' && ctx.path === provider.pathFor('authorization')) {
    const q = new URLSearchParams(ctx.querystring);
    const redirect = q.get('redirect_uri');
    if ((q.get('scope') ?? '').split(' ').includes('openid') && !q.get('nonce') && redirect) {
      const back = new URL(redirect);
      back.searchParams.set('error', 'invalid_request');
      back.searchParams.set('error_description', 'nonce required');
      if (q.get('state')) back.searchParams.set('state', q.get('state'));
      back.searchParams.set('iss', issuer);
      return ctx.redirect(back.toString());
    }
    return next();
  }
  if (AUDIENCE && ctx.method === 'GET' && ctx.path === provider.pathFor('authorization')) {
    // Auth0 names the API by `audience`: read it as the resource indicator.
    const q = new URLSearchParams(ctx.querystring);
    if (q.has('audience') && !q.has('resource')) {
      q.set('resource', q.get('audience'));
      q.delete('audience');
      ctx.querystring = q.toString();
    }
    return next();
  }
  if (RFC8414 && ctx.method === 'GET' && ctx.path === '/.well-known/oauth-authorization-server') {
    // The provider's own discovery document, served as RFC 8414 metadata.
    const res = await fetch(`${issuer}/.well-known/openid-configuration`);
    const doc = await res.json();
    if (RFC8414 === 'no-revocation') delete doc.revocation_endpoint;
    return json(ctx, 200, doc);
  }

  if (fault.mode === 'down' && takeFault() === 'down') {
    ctx.respond = false;
    ctx.req.socket.destroy();
    return undefined;
  }

  const post = ctx.method === 'POST';
  if (post && ctx.path === paths.revocation) counts.revocation += 1;
  if (post && ctx.path === paths.introspection) counts.introspection += 1;
  if (post && ctx.path === paths.device_authorization) {
    counts.device_authorization += 1;
    await next();
    // A client without the device grant: answered as Keycloak and Okta answer it
    // (RFC 8628 3.2 allows unauthorized_client; the provider says invalid_request).
    if (ctx.status === 400 && ctx.body?.error === 'invalid_request'
        && /not allowed for this client/.test(ctx.body?.error_description ?? '')) {
      ctx.body = { error: 'unauthorized_client', error_description: 'Client is not allowed to initiate the device authorization grant' };
    }
    // RFC 8628 3.2: the provider omits `interval` (the client default is then 5 s).
    if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && ctx.body.device_code) {
      ctx.body = { ...ctx.body, interval: DEVICE_INTERVAL };
      if (fault.mode === 'hostile_device' && takeFault() === 'hostile_device') {
        ctx.body = {
          ...ctx.body,
          verification_uri: 'javascript:alert(1)//',
          verification_uri_complete: 'file:///etc/passwd',
          user_code: 'AB\u001b[2JCD',
        };
      }
    }
    return undefined;
  }
  if (!(post && ctx.path === paths.token)) return next();

  // --- token endpoint ----------------------------------------------------------------
  const countGrant = (grantType) => {
    const key = String(grantType ?? '(none)');
    counts.token[key] = (counts.token[key] ?? 0) + 1;
  };

  const delayMs = fault.delay_ms;
  const mode = takeFault();
  if (mode === 'none' || mode === 'slow' || mode === 'hold') {
    if (mode === 'slow') await sleep(delayMs);
    if (mode === 'hold') {
      counts.held += 1;
      await new Promise((resolve) => { held.push(resolve); });
      counts.held -= 1;
    }
    try {
      await next();
      const body = ctx.body && typeof ctx.body === 'object' ? ctx.body : null;
      for (const k of ['access_token', 'refresh_token', 'id_token']) {
        if (body && typeof body[k] === 'string') issued.push(body[k]);
      }
      if (body && typeof body.refresh_token === 'string') {
        refreshTokens.push(body.refresh_token);
        const from = ctx.oidc?.body?.refresh_token;
        if (ctx.oidc?.body?.grant_type === 'refresh_token' && typeof from === 'string') {
          rotations.push({ from, to: body.refresh_token });
        }
      }
      if (body && typeof body.access_token === 'string') await rotated(ctx, body.access_token);
      if (body?.error === 'use_dpop_nonce') counts.use_dpop_nonce += 1;
      const presented = ctx.oidc?.body?.refresh_token;
      if (body?.error === 'invalid_grant' && rotations.some((r) => r.from === presented)) {
        replays.push(presented);
      }
      return undefined;
    } finally {
      // ctx.oidc exists once the provider's router matched; body is the parsed form.
      countGrant(ctx.oidc?.body?.grant_type);
    }
  }

  // Faulted: the provider never sees the request; parse the form ourselves for counting.
  countGrant(querystring.parse(await readBody(ctx.req)).grant_type);
  switch (mode) {
    case '500':
      return json(ctx, 500, { error: 'server_error', error_description: 'injected fault' });
    case 'slow_down':
      return json(ctx, 400, { error: 'slow_down', error_description: 'injected fault' });
    case 'html':
      ctx.status = 200;
      ctx.type = 'text/html';
      ctx.body = '<!DOCTYPE html><html><head><title>Gateway</title></head><body><h1>Please sign in to the corporate proxy</h1></body></html>';
      return undefined;
    case 'empty_400':
      // A refusal without an OAuth error object, as some IdPs answer a revoked
      // refresh token.
      ctx.status = 400;
      ctx.body = '';
      return undefined;
    case 'truncated':
      ctx.status = 200;
      ctx.type = 'application/json';
      ctx.body = '{"access_token": "abc';
      return undefined;
    default:
      throw new Error(`unreachable fault mode ${mode}`);
  }
});

// Records an issued opaque access token by grant; with IDP_REVOKE_ON_ROTATION, a refresh
// destroys the access tokens issued before it in the same grant.
async function rotated(ctx, accessToken) {
  const at = await provider.AccessToken.find(accessToken);
  if (!at) return; // a JWT access token (resource indicator): not tracked
  const earlier = accessByGrant.get(at.grantId) ?? [];
  if (REVOKE_ON_ROTATION && ctx.oidc?.body?.grant_type === 'refresh_token') {
    for (const old of earlier) {
      const model = await provider.AccessToken.find(old);
      if (model) await model.destroy();
    }
    accessByGrant.set(at.grantId, [accessToken]);
  } else {
    accessByGrant.set(at.grantId, [...earlier, accessToken]);
  }
}

provider.on('server_error', (_ctx, err) => console.error('idp server_error:', err));

handler = provider.callback();

process.stdout.write(`{"issuer": ${JSON.stringify(issuer)}, "port": ${port}, "pid": ${process.pid}}\n`);

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
// SIGUSR2 toggles an outage. (SIGUSR1 is Node's debugger signal; left alone.)
let down = false;
let keepAlive; // with the server closed, nothing else keeps Node's event loop alive
server.on('error', (e) => console.error('idp: server error:', e.message));
process.on('SIGUSR2', () => {
  down = !down;
  if (down) {
    keepAlive = setInterval(() => {}, 60_000);
    server.close();
    server.closeAllConnections();
    console.error('idp: down (SIGUSR2): connections are refused');
    return;
  }
  const up = () => server.listen(port, HOST, () => {
    clearInterval(keepAlive);
    console.error('idp: up again (SIGUSR2)');
  });
  // close() completes asynchronously; listen again once it has.
  if (server.listening) server.once('close', up); else up();
});
process.on('SIGINT', shutdown);
