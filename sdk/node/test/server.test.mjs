// The SDK against a real Pricegraph server (server.py subprocess) and a fake provider (node:http).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import util from 'node:util';
import {
  CoaxiomClient, APIError, AuthenticationError, PaymentRequiredError, NotFoundError, BadRequestError,
} from '../dist/index.js';
import { startFakeProvider, startPricegraph } from './helpers.mjs';

const CUSTOMER_KEY = 'gsk_customer_key_0123456789';
let fake, pg, apiKey;

before(async () => {
  fake = await startFakeProvider();
  // groq and together point at the fake; together has a platform key, groq only the customer's.
  const toml = [
    '[providers.groq]', `base_url = "${fake.url}/groq/v1"`,
    '[providers.together]', `base_url = "${fake.url}/together/v1"`, 'api_key = "platform-together-key"',
  ].join('\n') + '\n';
  pg = await startPricegraph({ providersToml: toml });
  const created = await pg.graphql('mutation { createAccount(plan: DEVELOPER) { secret account { id } } }');
  apiKey = created.createAccount.secret;
  await pg.graphql(
    'mutation($id: ID!) { creditBalance(accountId: $id, amount: "5", idempotencyKey: "sdk-test-credit", description: "sdk test") { replayed } }',
    { id: created.createAccount.account.id },
  );
  await recordPrice('0.59', '0.79');
}, { timeout: 120_000 });

after(async () => {
  await pg?.stop();
  await fake?.close();
});

function recordPrice(input, output, provider = 'groq') {
  return pg.graphql(`mutation { recordPrices(prices: [{model: "llama-3.3-70b", provider: "${provider}", inputPer1m: "${input}", outputPer1m: "${output}"}]) { unchanged offersCreated } }`);
}

function client(extra = {}) {
  return new CoaxiomClient({ apiKey, providerKeys: { groq: CUSTOMER_KEY }, baseURL: `${pg.url}/api/v1`, ...extra });
}

test("the document's Node snippet (base URL aside)", async () => {
  const client = new CoaxiomClient({
    apiKey,
    providerKeys: { together: 'sk-...', groq: CUSTOMER_KEY, fireworks: 'fw-...' },
    baseURL: `${pg.url}/api/v1`,
  });
  const res = await client.chat({ model: 'llama-3.3-70b', messages: [{ role: 'user', content: 'Hello' }] });
  assert.equal(res.choices[0].message.content, 'Hello from the fake provider.');
  assert.equal(res._coaxiom.provider, 'groq');
  assert.equal(res._coaxiom.key_source, 'customer');
  assert.equal(res._coaxiom.model_slug, 'llama-3.3-70b');
  // the customer's key went upstream, decoded from X-Provider-Keys exactly as the server parses it
  const last = fake.seen.at(-1);
  assert.equal(last.provider, 'groq');
  assert.equal(last.headers.authorization, `Bearer ${CUSTOMER_KEY}`);
});

test('COAXIOM_BASE_URL is the default base URL, and an origin is accepted', async () => {
  const saved = process.env.COAXIOM_BASE_URL;
  process.env.COAXIOM_BASE_URL = pg.url;
  try {
    const c = new CoaxiomClient({ apiKey });
    assert.equal(c.baseURL, `${pg.url}/api/v1`);
    assert.ok((await c.providers()).providers.length > 0);
  } finally {
    if (saved === undefined) delete process.env.COAXIOM_BASE_URL; else process.env.COAXIOM_BASE_URL = saved;
  }
  delete process.env.COAXIOM_BASE_URL;
  assert.equal(new CoaxiomClient({}).baseURL, 'https://coaxiom.io/api/v1');
  if (saved !== undefined) process.env.COAXIOM_BASE_URL = saved;
});

test('streaming: chunks, usage and the final _coaxiom block', async () => {
  const stream = await client().chat({ model: 'llama-3.3-70b', messages: [{ role: 'user', content: 'Hello' }], stream: true });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  assert.ok(chunks.length >= 4);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  assert.equal(stream.content, 'Hello from the fake provider.');
  assert.equal(stream.coaxiom.provider, 'groq');
  assert.equal(stream.coaxiom.key_source, 'customer');
  assert.deepEqual(chunks.at(-1)._coaxiom, stream.coaxiom);
  assert.ok(stream.usage.total_tokens > 0);
  // finalCoaxiom() reads a stream to its end
  const s2 = await client().chat({ model: 'llama-3.3-70b', messages: [{ role: 'user', content: 'Hi' }], stream: true });
  assert.equal((await s2.finalCoaxiom()).model_slug, 'llama-3.3-70b');
});

test('platform key routing (no customer keys)', async () => {
  const c = new CoaxiomClient({ apiKey, baseURL: pg.url });
  const res = await c.chat({ model: 'together/llama-3.3-70b', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 5 });
  assert.equal(res._coaxiom.provider, 'together');
  assert.equal(res._coaxiom.key_source, 'platform');
});

test('price API reads', async () => {
  const c = client();
  const prices = await c.prices({ model: 'llama-3.3-70b', provider: 'groq' });
  assert.equal(prices.model, 'llama-3.3-70b');
  assert.equal(prices.prices[0].provider, 'groq');
  assert.equal(typeof prices.prices[0].blended_per_1m, 'number');
  const history = await c.history({ model: 'llama-3.3-70b', provider: 'groq', days: 7, interval: '1d' });
  assert.equal(history.interval, '1d');
  assert.ok(history.candles.length >= 1);
  assert.equal(typeof history.candles.at(-1).close, 'number');
  const models = await c.models();
  assert.ok(models.models.some((m) => m.slug === 'llama-3.3-70b'));
  const providers = await c.providers();
  assert.ok(providers.providers.some((p) => p.slug === 'groq'));
  const route = await c.routeModels();
  assert.equal(typeof route.count, 'number');
  assert.ok(route.models.some((m) => m.slug === 'llama-3.3-70b'));
});

test('compare: 402 on the developer plan, answers on team', async () => {
  await assert.rejects(client().compare({ models: ['llama-3.3-70b', 'gpt-4o'] }), (e) => {
    assert.ok(e instanceof PaymentRequiredError);
    assert.ok(e instanceof APIError);
    assert.equal(e.status, 402);
    assert.match(e.message, /team plan/);
    return true;
  });
  const team = await pg.graphql('mutation { createAccount(plan: TEAM) { secret } }');
  const c = new CoaxiomClient({ apiKey: team.createAccount.secret, baseURL: pg.url });
  const cmp = await c.compare({ models: ['llama-3.3-70b', 'gpt-4o'], provider: 'groq' });
  assert.equal(cmp.models.length, 2);
  assert.equal(cmp.models[0].model, 'llama-3.3-70b');
  assert.equal(cmp.models[0].cheapest_provider, 'groq');
});

test('account reads: me, balance, usage, billing history', async () => {
  const c = client();
  const me = await c.me();
  assert.equal(me.object, 'me');
  assert.equal(me.account.plan, 'developer');
  assert.ok(apiKey.startsWith(me.api_key.prefix));
  const balance = await c.balance();
  assert.equal(balance.object, 'balance');
  assert.ok(balance.balance > 0 && balance.balance <= 5);
  const usage = await c.usage({ period: '7d', limit: 5 });
  assert.equal(usage.object, 'usage');
  assert.ok(usage.summary.total_requests >= 1);
  assert.ok(usage.logs.data.length >= 1 && usage.logs.data.length <= 5);
  const logs = await c.usageLogs({ model: 'llama-3.3-70b', limit: 1 });
  assert.equal(logs.data.length, 1);
  assert.equal((await c.usageSummary({ period: '24h' })).object, 'usage.summary');
  assert.ok((await c.usageCosts()).data.length >= 1);
  assert.ok((await c.usageModels()).data.some((m) => m.model === 'llama-3.3-70b'));
  assert.equal((await c.usageKeys()).data[0].object, 'usage.key');
  assert.ok((await c.usageEndpoints()).data.length >= 1);
  const billing = await c.billingHistory({ limit: 50 });
  assert.equal(billing.object, 'list');
  assert.ok(billing.data.some((t) => t.type === 'credit' && t.amount === 5));
  assert.ok(billing.data.some((t) => t.type === 'usage'));
});

test('typed errors carry the status and the server message', async () => {
  const c = client();
  await assert.rejects(c.prices({ model: 'no-such-model-xyz' }), (e) =>
    e instanceof NotFoundError && e.status === 404 && /model not found/.test(e.message));
  await assert.rejects(c.chat({ model: 'no-such-model-xyz', messages: [{ role: 'user', content: 'x' }] }), (e) =>
    e instanceof NotFoundError && e.status === 404 && e.code === 'model_not_found');
  const bad = new CoaxiomClient({ apiKey: 'cxm_not_a_real_key', baseURL: pg.url, providerKeys: { groq: CUSTOMER_KEY } });
  await assert.rejects(bad.me(), (e) => e instanceof AuthenticationError && e.status === 401 && /invalid or revoked/.test(e.message));
  await assert.rejects(bad.chat({ model: 'llama-3.3-70b', messages: [{ role: 'user', content: 'x' }] }), (e) => {
    assert.ok(e instanceof AuthenticationError);
    assert.equal(e.status, 401);
    assert.ok(!e.message.includes(CUSTOMER_KEY) && !util.inspect(e).includes(CUSTOMER_KEY));
    assert.ok(!util.inspect(e).includes('cxm_not_a_real_key'));
    return true;
  });
  const free = new CoaxiomClient({ baseURL: pg.url });
  await assert.rejects(free.history({ model: 'llama-3.3-70b', provider: 'groq' }), (e) => e instanceof PaymentRequiredError && e.status === 402);
  await assert.rejects(c.history({ model: 'llama-3.3-70b', provider: 'groq', days: 1000 }), (e) => e instanceof APIError && e.status >= 400 && e.status < 500);
  await assert.rejects(c.usage({ period: 'forever' }), (e) => e instanceof BadRequestError && e.status === 400 && /period/.test(e.message));
});

test('keys never show in inspect output or JSON', () => {
  const c = client();
  const shown = util.inspect(c, { depth: 10, showHidden: true }) + JSON.stringify(c) + String(Object.keys(c));
  assert.ok(!shown.includes(apiKey));
  assert.ok(!shown.includes(CUSTOMER_KEY));
  assert.ok(!shown.includes(Buffer.from(JSON.stringify({ groq: CUSTOMER_KEY })).toString('base64')));
  assert.match(util.inspect(c), /\[redacted\]/);
});

test('subscribePrices receives a recorded tick', { timeout: 30_000 }, async () => {
  const sub = client().subscribePrices({ model: 'llama-3.3-70b', provider: 'groq', minChangePct: 1 });
  await sub.ready;
  // The subscription registers shortly after `subscribe` is sent: record moves until one arrives.
  let input = 0.60;
  const received = (async () => {
    for await (const tick of sub) return tick;
  })();
  let tick;
  for (let i = 0; i < 40 && !tick; i++) {
    input = Math.round((input + 0.05) * 100) / 100;
    await recordPrice(input.toFixed(2), '0.79');
    tick = await Promise.race([received, new Promise((ok) => setTimeout(ok, 500))]);
  }
  sub.close();
  assert.ok(tick, 'no tick arrived');
  assert.equal(tick.model, 'llama-3.3-70b');
  assert.equal(tick.provider, 'groq');
  assert.equal(typeof tick.blendedPer1m, 'string');
  assert.ok(Number(tick.changePct) >= 1);
  // after close() the iterator is done
  const after = await sub[Symbol.asyncIterator]().next();
  assert.equal(after.done, true);
});

test('subscribePrices with a bad key fails with AuthenticationError', { timeout: 15_000 }, async () => {
  const sub = new CoaxiomClient({ apiKey: 'cxm_bad_key_for_ws', baseURL: pg.url }).subscribePrices({});
  await assert.rejects((async () => { for await (const _ of sub) break; })(), (e) => {
    assert.ok(e instanceof APIError, String(e));
    assert.ok(!e.message.includes('cxm_bad_key_for_ws'));
    return e instanceof AuthenticationError && e.status === 401;
  });
  sub.close();
});
