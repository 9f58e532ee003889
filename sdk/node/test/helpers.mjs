// Test fixtures: a fake OpenAI-compatible provider (node:http) and a real Pricegraph server subprocess.
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const sdkRoot = resolve(here, '..');

export function listen(server) {
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok(server.address().port));
  });
}


/** A port nobody listens on right now. */
export async function pickPort() {
  const s = http.createServer();
  const port = await listen(s);
  await new Promise((ok) => s.close(ok));
  return port;
}

/** Answers `/{provider}/v1/chat/completions`, plain or SSE (with a usage chunk when asked), and records
 * each request's provider, body and headers. */
export async function startFakeProvider() {
  const seen = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const match = /^\/([^/]+)\/v1\/chat\/completions$/.exec(req.url ?? '');
      if (req.method !== 'POST' || !match) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { message: 'not found', type: 'not_found', code: 'not_found' } }));
      }
      const body = JSON.parse(raw);
      seen.push({ provider: match[1], body, headers: req.headers });
      const reply = 'Hello from the fake provider.';
      const prompt = 7;
      const completion = body.max_tokens ?? reply.split(' ').length;
      const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
      const id = 'chatcmpl-' + randomBytes(6).toString('hex');
      const created = Math.floor(Date.now() / 1000);
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const base = { id, object: 'chat.completion.chunk', created, model: body.model, system_fingerprint: 'fp_fake' };
        const send = (o) => res.write(`data: ${JSON.stringify({ ...base, ...o })}\n\n`);
        send({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
        for (let i = 0; i < reply.length; i += 8) {
          send({ choices: [{ index: 0, delta: { content: reply.slice(i, i + 8) }, finish_reason: null }] });
        }
        send({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
        if (body.stream_options?.include_usage) send({ choices: [], usage });
        return res.end('data: [DONE]\n\n');
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({
        id, object: 'chat.completion', created, model: body.model, system_fingerprint: 'fp_fake',
        choices: [{ index: 0, message: { role: 'assistant', content: reply }, logprobs: null, finish_reason: 'stop' }],
        usage,
      }));
    });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }) };
}

/** Starts `server.py` on a temporary SQLite file and a free port; answers { url, adminToken, stop }. */
export async function startPricegraph({ providersToml }) {
  const dir = mkdtempSync(join(tmpdir(), 'coaxiom-sdk-'));
  const providersFile = join(dir, 'providers.toml');
  writeFileSync(providersFile, providersToml);
  // PRICEGRAPH_PYTHON: a path (relative to sdk/node) or a bare name looked up on PATH (`python3`).
  const given = process.env.PRICEGRAPH_PYTHON || '../../.venv/bin/python';
  const python = given.includes('/') ? resolve(sdkRoot, given) : given;
  const serverPy = process.env.PRICEGRAPH_SERVER ?? resolve(sdkRoot, '../../server.py');
  const port = await pickPort();
  const adminToken = 'admin-' + randomBytes(12).toString('hex');
  const child = spawn(python, [serverPy], {
    cwd: dir,
    env: {
      ...process.env,
      DATABASE_URL: `sqlite+aiosqlite:///${join(dir, 'db.sqlite')}`,
      PORT: String(port),
      HOST: '127.0.0.1',
      ADMIN_TOKEN: adminToken,
      PROVIDERS_FILE: providersFile,
      LOG_LEVEL: 'WARNING',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const exited = new Promise((ok) => child.once('exit', ok));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server.py exited (${child.exitCode}):\n${log}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) { child.kill('SIGTERM'); throw new Error(`server.py did not start:\n${log}`); }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  async function graphql(query, variables) {
    const r = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = await r.json();
    if (body.errors) throw new Error(`graphql: ${JSON.stringify(body.errors)}`);
    return body.data;
  }
  return {
    url,
    adminToken,
    graphql,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
