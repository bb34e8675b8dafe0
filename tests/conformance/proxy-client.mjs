// A real MCP client (the official TypeScript SDK's v2 client, 2.4.0) through
// `regent mcp proxy`, on the wire of one revision: the stateful initialize
// handshake for 2025-11-25, the stateless wire pinned for 2026-07-28.
//
//   node proxy-client.mjs REVISION NAME TOOL [ARGS_JSON] [TOOL [ARGS_JSON]]...
//
// Runs `regent` from REGENT_BIN_DIR (else PATH) with this process's
// environment (the caller's agent), connects, lists the tools, calls each one
// named, and prints one JSON line per call: {"tool", "text", "version"}
// (the text of its first content item, the revision in use). Exit 1 on any
// failure, with the reason on stderr.

import * as path from 'node:path';

import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

// A subclass: the SDK then negotiates on this one process (its base class
// would probe a sibling process first).
class OneProcess extends StdioClientTransport {}

const [revision, name, ...rest] = process.argv.slice(2);
if (!revision || !name) {
  console.error('usage: node proxy-client.mjs REVISION NAME TOOL [ARGS_JSON]...');
  process.exit(2);
}
const calls = [];
for (let i = 0; i < rest.length;) {
  const tool = rest[i];
  i += 1;
  let args = {};
  if (i < rest.length && rest[i].startsWith('{')) {
    args = JSON.parse(rest[i]);
    i += 1;
  }
  calls.push({ name: tool, arguments: args });
}
const regent = process.env.REGENT_BIN_DIR ? path.join(process.env.REGENT_BIN_DIR, 'regent') : 'regent';

const mcp = new Client(
  { name: 'regent-proxy-client', version: '1.0.0' },
  { versionNegotiation: { mode: revision >= '2026-07-28' ? { pin: revision } : 'legacy' } },
);
try {
  await mcp.connect(new OneProcess({
    command: regent, args: ['mcp', 'proxy', name], env: process.env, stderr: 'inherit',
  }));
  const tools = await mcp.listTools();
  for (const call of calls) {
    if (!tools.tools.some((t) => t.name === call.name)) throw new Error(`${name} has no tool ${call.name}`);
    const r = await mcp.callTool(call);
    const text = r.content?.[0]?.text ?? null;
    process.stdout.write(`${JSON.stringify({ tool: call.name, text, version: mcp.getNegotiatedProtocolVersion?.() ?? null })}\n`);
  }
  await mcp.close();
  process.exit(0);
} catch (e) {
  console.error(`proxy-client: ${e?.message ?? e}`);
  try { await mcp.close(); } catch { /* closing anyway */ }
  process.exit(1);
}
