// The MCP conformance suite's client command for regent:
//
//   node client.mjs SERVER_URL
//
// It starts a regent agent of its own (memory store, fresh directories), sets
// up what the scenario gives in MCP_CONFORMANCE_CONTEXT (a pre-registered
// client, client credentials, an enterprise IdP and its ID token) with the
// regent CLI, then drives `regent mcp proxy` with the official TypeScript
// SDK's v2 stdio client, on the wire of the revision the suite runs
// (MCP_CONFORMANCE_PROTOCOL_VERSION: the stateful `initialize` handshake up
// to 2025-11-25, the stateless 2026-07-28 wire pinned after it): connect,
// tools/list, tools/call. Logins go through $BROWSER (regent's headless test
// browser). Exit 0 when the session worked.
//
// Environment: REGENT_BIN_DIR (where regent and regentd are), BROWSER,
// MCP_CONFORMANCE_SCENARIO, MCP_CONFORMANCE_CONTEXT,
// MCP_CONFORMANCE_PROTOCOL_VERSION.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

// A subclass: the SDK then negotiates on this one process (its base class
// would probe a sibling process first, and regent would authorize twice).
class OneProcess extends StdioClientTransport {}

// The runner cannot kill what this starts (it signals only the shell): keep
// a deadline of our own, below its 30 s.
const DEADLINE_MS = 25_000;
const CIMD_URL = 'https://conformance-test.local/client-metadata.json';

const url = process.argv[process.argv.length - 1];
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const revision = process.env.MCP_CONFORMANCE_PROTOCOL_VERSION ?? '2025-11-25';
// Dated revisions compare as strings; the stateless wire starts at 2026-07-28.
const stateless = revision >= '2026-07-28';
const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || '{}');
const bin = (name) => path.join(process.env.REGENT_BIN_DIR ?? '', name);

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'regent-conformance-'));
fs.chmodSync(home, 0o700);
const env = {
  ...process.env,
  HOME: home,
  XDG_RUNTIME_DIR: path.join(home, 'run'),
  XDG_CONFIG_HOME: path.join(home, 'config'),
  XDG_STATE_HOME: path.join(home, 'state'),
  REGENT_SOCKET: path.join(home, 'run', 'agent.sock'),
  REGENT_NO_AUTOSTART: '1',
};
fs.mkdirSync(path.join(home, 'run'), { mode: 0o700 });

const log = (...args) => console.error('[conformance client]', ...args);
let agent;
let mcp;

function cleanup(code) {
  try { mcp?.close(); } catch { /* closing anyway */ }
  if (agent && agent.exitCode === null) agent.kill('SIGTERM');
  fs.rmSync(home, { recursive: true, force: true });
  process.exit(code);
}
setTimeout(() => { log(`no result within ${DEADLINE_MS} ms`); cleanup(1); }, DEADLINE_MS).unref();

function regent(...args) {
  const r = spawnSync(bin('regent'), args, { env, encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`regent ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

function secretFile(name, value) {
  const p = path.join(home, name);
  fs.writeFileSync(p, value, { mode: 0o600 });
  return p;
}

async function startAgent() {
  agent = spawn(bin('regentd'), ['--store', 'memory', '--client-metadata-url', CIMD_URL], {
    env: { ...env, REGENT_LOG: process.env.REGENT_LOG ?? 'info' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 500; i += 1) {
    const up = await new Promise((resolve) => {
      const s = net.connect(env.REGENT_SOCKET, () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    if (agent.exitCode !== null) throw new Error(`regentd exited (${agent.exitCode})`);
    await new Promise((r) => { setTimeout(r, 10); });
  }
  throw new Error('regentd did not come up');
}

// What the scenario gives: configured with the CLI, as a user would.
function setUp() {
  if (scenario === 'auth/pre-registration') {
    regent('mcp', 'add', 'server', url, '--client-id', context.client_id,
      '--client-secret-file', secretFile('secret', context.client_secret));
    return 'server';
  }
  if (scenario === 'auth/client-credentials-basic') {
    regent('mcp', 'add', 'server', url, '--client-credentials', '--client-id', context.client_id,
      '--client-secret-file', secretFile('secret', context.client_secret));
    return 'server';
  }
  if (scenario === 'auth/client-credentials-jwt') {
    regent('mcp', 'add', 'server', url, '--client-credentials', '--client-id', context.client_id,
      '--client-key-file', secretFile('key.pem', context.private_key_pem));
    return 'server';
  }
  if (scenario === 'auth/enterprise-managed-authorization' || scenario === 'auth/cross-app-access-complete-flow') {
    regent('idp', 'add', 'corp-idp', '--issuer', context.idp_issuer, '--client-id', context.idp_client_id);
    regent('login', 'corp-idp', '--id-token-file', secretFile('id_token', context.idp_id_token));
    regent('mcp', 'add', 'server', url, '--enterprise-idp', 'corp-idp', '--client-id', context.client_id,
      '--client-secret-file', secretFile('secret', context.client_secret));
    return 'server';
  }
  if (scenario === 'auth/wif-jwt-bearer') {
    // The platform's workload JWT, as a pod would have it mounted.
    regent('mcp', 'add', 'server', url, '--client-id', context.client_id,
      '--workload-token-file', secretFile('workload.jwt', context.valid_jwt));
    return 'server';
  }
  if (scenario === 'auth/dpop' || scenario === 'auth/dpop-nonce') {
    // The DPoP extension (SEP-1932): regent binds tokens by default only where the
    // resource's metadata names DPoP too (a server that cannot check a binding
    // refuses the token); these servers' metadata does not, so it is asked for.
    regent('mcp', 'add', 'server', url, '--dpop', 'always');
    return 'server';
  }
  // Everything else: the URL itself; the proxy adds it on first use and discovers the rest.
  return url;
}

try {
  await startAgent();
  const target = setUp();
  const transport = new OneProcess({
    command: bin('regent'),
    args: ['mcp', 'proxy', target],
    env,
    stderr: 'inherit',
  });
  // Scenarios whose server asks the client something (elicitation, and the
  // input-required round trips of SEP-2322) need a handler: it accepts, and
  // the SDK fills in the schema's defaults.
  const elicits = ['elicitation-sep1034-client-defaults', 'sep-2322-client-request-state'].includes(scenario);
  mcp = new Client(
    { name: 'regent-conformance-client', version: '1.0.0' },
    {
      capabilities: elicits ? { elicitation: { form: { applyDefaults: true } } } : {},
      versionNegotiation: { mode: stateless ? { pin: revision } : 'legacy' },
    },
  );
  if (elicits) {
    mcp.setRequestHandler('elicitation/create', async () => (
      scenario === 'sep-2322-client-request-state'
        ? { action: 'accept', content: { confirmed: true } }
        : { action: 'accept', content: {} }));
  }
  await mcp.connect(transport);
  const tools = await mcp.listTools();
  log('tools:', tools.tools.map((t) => t.name).join(', '));
  // The calls a scenario asks for, else those its tools are known for.
  const byScenario = {
    'elicitation-sep1034-client-defaults': [{ name: 'test_client_elicitation_defaults', arguments: {} }],
    'sse-retry': [{ name: 'test_reconnection', arguments: {} }],
    'sep-2322-client-request-state': ['test_mrtr_echo_state', 'test_mrtr_no_state',
      'test_mrtr_unrelated', 'test_mrtr_no_result_type'].map((name) => ({ name, arguments: {} })),
    // Every tool listed is called: the bridge must have left out the ones whose
    // header declarations are invalid.
    'http-invalid-tool-headers': tools.tools.map((t) => ({
      name: t.name,
      arguments: Object.fromEntries((t.inputSchema?.required ?? []).map((k) => [k, 'us-west1'])),
    })),
  };
  const calls = context.toolCalls ?? byScenario[scenario] ?? [
    { name: 'test-tool', arguments: {} },
    { name: 'add_numbers', arguments: { a: 5, b: 3 } },
  ];
  for (const call of calls) {
    if (!tools.tools.some((t) => t.name === call.name)) continue;
    try {
      const result = await mcp.callTool(call);
      log(`tools/call ${call.name}:`, JSON.stringify(result.content));
    } catch (e) {
      // A result without resultType is refused by the SDK itself (SEP-2322): the
      // scenario checks that no retry went out, not that the call succeeded.
      if (scenario !== 'sep-2322-client-request-state') throw e;
      log(`tools/call ${call.name}: ${e?.message ?? e}`);
    }
  }
  await mcp.close();
  cleanup(0);
} catch (e) {
  log(`failed: ${e?.message ?? e}`);
  cleanup(1);
}
