// Retries and error mapping against tiny node:http servers (no Pricegraph needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { CoaxiomClient, RateLimitError, InternalServerError, encodeProviderKeys } from '../dist/index.js';
import { listen } from './helpers.mjs';

async function serve(handler) {
  const hits = [];
  const server = http.createServer((req, res) => { hits.push({ url: req.url, at: Date.now(), headers: req.headers }); handler(req, res, hits.length); });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, hits, close: () => new Promise((ok) => server.close(ok)) };
}

const PRICES = JSON.stringify({ model: 'llama-3.3-70b', updated_at: null, prices: [] });

test('a read retries a 429 once, after its Retry-After', async () => {
  const s = await serve((req, res, n) => {
    if (n === 1) {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
      return res.end(JSON.stringify({ error: 'rate limit exceeded: 100 requests per 24h', code: 429 }));
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(PRICES);
  });
  try {
    const c = new CoaxiomClient({ apiKey: 'cxm_test', baseURL: `${s.url}/api/v1` });
    const res = await c.prices({ model: 'llama-3.3-70b' });
    assert.equal(res.model, 'llama-3.3-70b');
    assert.equal(s.hits.length, 2);
    const waited = s.hits[1].at - s.hits[0].at;
    assert.ok(waited >= 950, `waited only ${waited} ms`);
    assert.equal(s.hits[0].url, '/api/v1/prices?model=llama-3.3-70b');
    assert.equal(s.hits[0].headers.authorization, 'Bearer cxm_test');
  } finally { await s.close(); }
});

test('after the retries a 429 is a RateLimitError with retryAfter', async () => {
  const s = await serve((req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '0' });
    res.end(JSON.stringify({ error: 'rate limit exceeded', code: 429 }));
  });
  try {
    const c = new CoaxiomClient({ baseURL: s.url, maxRetries: 1 });
    await assert.rejects(c.providers(), (e) => e instanceof RateLimitError && e.status === 429 && e.retryAfter === 0 && e.message === 'rate limit exceeded');
    assert.equal(s.hits.length, 2);
  } finally { await s.close(); }
});

test('5xx reads are retried; chat is never retried', async () => {
  const s = await serve((req, res, n) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'every candidate is cooling down', type: 'api_error', code: 'unavailable' } }));
  });
  try {
    const c = new CoaxiomClient({ baseURL: s.url, maxRetries: 2, maxRetryDelay: 0.05 });
    await assert.rejects(c.models(), (e) => e instanceof InternalServerError && e.status === 503);
    assert.equal(s.hits.length, 3);
    s.hits.length = 0;
    await assert.rejects(c.chat({ model: 'm', messages: [] }), (e) => e.status === 503 && e.message === 'every candidate is cooling down');
    assert.equal(s.hits.length, 1);
  } finally { await s.close(); }
});

test('X-Provider-Keys is base64 of the JSON object', async () => {
  const s = await serve((req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"ok":true}'); });
  try {
    const keys = { groq: 'gsk_1', together: 'sk-2' };
    const c = new CoaxiomClient({ baseURL: s.url, providerKeys: keys });
    await c.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    const header = s.hits[0].headers['x-provider-keys'];
    assert.deepEqual(JSON.parse(Buffer.from(header, 'base64').toString('utf8')), keys);
    assert.equal(header, encodeProviderKeys(keys));
    assert.throws(() => new CoaxiomClient({ providerKeys: { groq: 'bad\nkey-secret' } }), (e) => !e.message.includes('key-secret'));
  } finally { await s.close(); }
});
