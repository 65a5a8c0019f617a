#!/usr/bin/env node
// A real MCP client (the TypeScript SDK, @modelcontextprotocol/sdk) for mcpwatch's
// root integration tests.
//
//   node ts-client.mjs CONFIG.json SERVER [--timeout SECONDS]
//
// CONFIG.json is an mcpServers-style host config (the same file can be imported with
// `mcpwatch approve --from-config`):
//
//   {"mcpServers": {"fs": {"command": "npx",
//                          "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
//                          "env": {"npm_config_prefer_offline": "true"},
//                          "cwd": "/opt/mcpwatch-peers"}}}
//
// It starts SERVER with the SDK's StdioClientTransport (which, like every SDK host,
// passes only HOME LOGNAME PATH SHELL TERM USER plus the config's env), sends
// initialize and tools/list, prints ONE JSON line on stdout and exits:
//
//   {"ok":true,"server":{"name":…,"version":…},"tools":["read_file",…]}     exit 0
//   {"ok":false,"error":"…"}                                              exit 1
//
// Failures: bad config, spawn error, the server exiting or killed before answering
// (connection closed), or no answer within the timeout (default 20 s). The server's
// stderr goes to our stderr.
//
// The SDK is loaded from the peers directory `cargo xtask setup` installs:
// $MCPWATCH_PEERS_DIR, default /opt/mcpwatch-peers.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

let done = false;
function finish(result, code) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
}
function fail(err) {
  const msg = err instanceof Error ? err.message || String(err) : String(err);
  finish({ ok: false, error: msg }, 1);
}

function parseArgs(argv) {
  const pos = [];
  let timeout = 20;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--timeout') {
      timeout = Number(argv[++i]);
      if (!(timeout > 0)) throw new Error(`--timeout needs a positive number of seconds`);
    } else {
      pos.push(argv[i]);
    }
  }
  if (pos.length !== 2) {
    throw new Error('usage: node ts-client.mjs CONFIG.json SERVER [--timeout SECONDS]');
  }
  return { config: pos[0], server: pos[1], timeout };
}

function serverEntry(configPath, name) {
  const cfg = JSON.parse(readFileSync(configPath, 'utf8'));
  const servers = cfg.mcpServers ?? cfg.servers;
  const s = servers?.[name];
  if (!s || typeof s.command !== 'string') {
    throw new Error(`${configPath}: no server ${JSON.stringify(name)} with a "command"`);
  }
  return s;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const entry = serverEntry(args.config, args.server);
  const peers = process.env.MCPWATCH_PEERS_DIR || '/opt/mcpwatch-peers';
  // Resolve the SDK from the installed peers, not from this script's directory.
  const require = createRequire(join(peers, 'package.json'));
  let sdk;
  try {
    sdk = {
      ...require('@modelcontextprotocol/sdk/client/index.js'),
      ...require('@modelcontextprotocol/sdk/client/stdio.js'),
    };
  } catch (e) {
    throw new Error(
      `cannot load @modelcontextprotocol/sdk from ${peers}/node_modules (run \`cargo xtask setup\`): ${e.message}`,
    );
  }
  const timeoutMs = args.timeout * 1000;
  const timer = setTimeout(
    () => fail(`timed out after ${args.timeout} s waiting for ${args.server}`),
    timeoutMs,
  );
  const transport = new sdk.StdioClientTransport({
    command: entry.command,
    args: entry.args ?? [],
    env: entry.env,
    cwd: entry.cwd,
    stderr: 'inherit',
  });
  let closed = false;
  transport.onclose = () => {
    closed = true;
  };
  const client = new sdk.Client({ name: 'mcpwatch-ts-client', version: '1.0.0' });
  try {
    await client.connect(transport, { timeout: timeoutMs });
    const server = client.getServerVersion() ?? {};
    const tools = [];
    let cursor;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined, { timeout: timeoutMs });
      tools.push(...page.tools.map((t) => t.name));
      cursor = page.nextCursor;
    } while (cursor);
    clearTimeout(timer);
    const result = { ok: true, server: { name: server.name, version: server.version }, tools };
    await client.close().catch(() => {});
    finish(result, 0);
  } catch (e) {
    clearTimeout(timer);
    const why = e instanceof Error ? e.message : String(e);
    await client.close().catch(() => {});
    fail(closed ? `the server went away: ${why}` : why);
  }
}

main().catch(fail);
