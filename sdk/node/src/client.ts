import {
  APIConnectionError,
  APIError,
  APITimeoutError,
  RateLimitError,
  errorFor,
  parseRetryAfter,
} from "./errors.js";
import { ChatStream } from "./stream.js";
import { PriceSubscription } from "./subscribe.js";
import type {
  BalanceResponse,
  BalanceTransaction,
  BillingHistoryParams,
  ChatCompletion,
  ChatParams,
  CompareParams,
  CompareResponse,
  HistoryParams,
  HistoryResponse,
  List,
  MeResponse,
  ModelsResponse,
  PricesParams,
  PricesResponse,
  ProvidersResponse,
  RequestOptions,
  RouteModelsResponse,
  SubscribePricesParams,
  UsageByEndpoint,
  UsageByKey,
  UsageByModel,
  UsageCost,
  UsageLog,
  UsageParams,
  UsageResponse,
  UsageSummary,
} from "./types.js";

/** The published API document's base URL. */
export const DEFAULT_BASE_URL = "https://coaxiom.io/api/v1";
export const VERSION = "0.1.0";

export interface CoaxiomClientOptions {
  /** `cxm_…`; without one the free plan applies (per client address). */
  apiKey?: string;
  /** Your own provider keys, `{ groq: "gsk_…", … }`, sent as `X-Provider-Keys`. */
  providerKeys?: Record<string, string>;
  /** The API root (`https://coaxiom.io/api/v1`) or the server's origin (`http://127.0.0.1:8000`).
   * Default: `COAXIOM_BASE_URL`, else the document's. */
  baseURL?: string;
  /** Milliseconds per attempt (default 600 000). */
  timeout?: number;
  /** Retries of idempotent reads on 429, 5xx and connection errors (default 2). */
  maxRetries?: number;
  /** The longest wait between retries, in seconds, whatever `Retry-After` says (default 60). */
  maxRetryDelay?: number;
  /** Headers added to every request. */
  defaultHeaders?: Record<string, string>;
  /** A `fetch` implementation (default: the global one). */
  fetch?: typeof fetch;
}

type Query = Record<string, string | number | boolean | Date | string[] | null | undefined>;

interface Secrets {
  apiKey: string | undefined;
  providerKeys: string | undefined;
  secretValues: string[];
}

const secrets = new WeakMap<CoaxiomClient, Secrets>();
const INSPECT = Symbol.for("nodejs.util.inspect.custom");
const RETRY_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/** `X-Provider-Keys`: base64 of the JSON object mapping provider slugs to keys (as the server parses it). */
export function encodeProviderKeys(keys: Record<string, string>): string {
  if (keys === null || typeof keys !== "object" || Array.isArray(keys)) {
    throw new TypeError("providerKeys must be an object mapping provider slugs to keys");
  }
  const clean: Record<string, string> = {};
  for (const [slug, key] of Object.entries(keys)) {
    if (typeof key !== "string" || key.trim() === "") {
      throw new TypeError(`providerKeys: the key for ${JSON.stringify(slug)} must be a non-empty string`);
    }
    if (/[\r\n\0]/.test(key)) {
      throw new TypeError(`providerKeys: the key for ${JSON.stringify(slug)} contains a control character`);
    }
    clean[slug.trim().toLowerCase()] = key.trim();
  }
  return Buffer.from(JSON.stringify(clean), "utf8").toString("base64");
}

function toQueryValue(value: Query[string]): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Date) return String(Math.floor(value.getTime() / 1000));
  if (Array.isArray(value)) return value.join(",");
  return String(value);
}

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Mask any secret that a message might quote (defence in depth: the server never echoes keys). */
export function redactSecrets(text: string, values: string[]): string {
  let out = text;
  for (const v of values) if (v && v.length >= 4) out = out.split(v).join("[redacted]");
  return out;
}

export class CoaxiomClient {
  /** The API root, e.g. `https://coaxiom.io/api/v1`. */
  readonly baseURL: string;
  /** The server's origin (where `/v1/…`, `/graphql` live). */
  readonly origin: string;
  readonly timeout: number;
  readonly maxRetries: number;
  readonly maxRetryDelay: number;
  private readonly defaultHeaders: Record<string, string>;
  private readonly fetchImpl: typeof fetch;

  constructor(options: CoaxiomClientOptions = {}) {
    const raw = (options.baseURL ?? process.env.COAXIOM_BASE_URL ?? DEFAULT_BASE_URL).trim();
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new TypeError(`baseURL is not a URL: ${JSON.stringify(raw)}`);
    }
    const path = url.pathname.replace(/\/+$/, "");
    const rootPath = path.endsWith("/api/v1") ? path.slice(0, -"/api/v1".length) : path;
    this.origin = `${url.protocol}//${url.host}${rootPath}`;
    this.baseURL = `${this.origin}/api/v1`;
    this.timeout = options.timeout ?? 600_000;
    this.maxRetries = options.maxRetries ?? 2;
    this.maxRetryDelay = options.maxRetryDelay ?? 60;
    this.defaultHeaders = { ...(options.defaultHeaders ?? {}) };
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("no fetch: use Node 20 or later, or pass options.fetch");
    this.fetchImpl = f;
    const providerKeys = options.providerKeys ? encodeProviderKeys(options.providerKeys) : undefined;
    const apiKey = options.apiKey ?? process.env.COAXIOM_API_KEY ?? undefined;
    secrets.set(this, {
      apiKey,
      providerKeys,
      secretValues: [apiKey ?? "", providerKeys ?? "", ...Object.values(options.providerKeys ?? {})].filter(Boolean),
    });
  }

  /** util.inspect / console.log never show the keys. */
  [INSPECT](): string {
    const s = secrets.get(this)!;
    return `CoaxiomClient { baseURL: ${JSON.stringify(this.baseURL)}, apiKey: ${s.apiKey ? "'[redacted]'" : "undefined"}, providerKeys: ${s.providerKeys ? "'[redacted]'" : "undefined"} }`;
  }

  toJSON(): Record<string, unknown> {
    return { baseURL: this.baseURL, timeout: this.timeout, maxRetries: this.maxRetries };
  }

  // ---- the gateway --------------------------------------------------------------------------

  /** An OpenAI-compatible chat completion routed to the cheapest live provider. With `stream: true`
   * the answer is a {@link ChatStream}: iterate its chunks; `stream.coaxiom` holds the routing block
   * once the stream has ended. Never retried (a completion may be charged). */
  chat(params: ChatParams & { stream: true }, options?: RequestOptions): Promise<ChatStream>;
  chat(params: ChatParams & { stream?: false | undefined }, options?: RequestOptions): Promise<ChatCompletion>;
  chat(params: ChatParams, options?: RequestOptions): Promise<ChatCompletion | ChatStream>;
  async chat(params: ChatParams, options: RequestOptions = {}): Promise<ChatCompletion | ChatStream> {
    if (!params || typeof params.model !== "string" || !Array.isArray(params.messages)) {
      throw new TypeError("chat needs { model, messages }");
    }
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (options.providerKeys) headers["x-provider-keys"] = encodeProviderKeys(options.providerKeys);
    if (params.stream) {
      headers.accept = "text/event-stream";
      const controller = new AbortController();
      const response = await this.send("POST", `${this.baseURL}/route/chat/completions`, {
        body: JSON.stringify(params),
        headers,
        options,
        retries: 0,
        streamController: controller,
      });
      return new ChatStream(response, controller, (m) => this.redact(m));
    }
    const response = await this.send("POST", `${this.baseURL}/route/chat/completions`, {
      body: JSON.stringify(params),
      headers,
      options,
      retries: 0,
    });
    return (await this.json(response)) as ChatCompletion;
  }

  // ---- the price API ------------------------------------------------------------------------

  /** Live prices, cheapest blended first. */
  prices(params: PricesParams = {}, options?: RequestOptions): Promise<PricesResponse> {
    return this.get(`${this.baseURL}/prices`, params, options);
  }

  /** OHLC candles of one offer (developer plan or higher). */
  history(params: HistoryParams, options?: RequestOptions): Promise<HistoryResponse> {
    return this.get(`${this.baseURL}/history`, params as unknown as Query, options);
  }

  /** Cheapest and average price of up to 5 models (team plan or higher). */
  compare(params: CompareParams, options?: RequestOptions): Promise<CompareResponse> {
    return this.get(`${this.baseURL}/compare`, params as unknown as Query, options);
  }

  models(options?: RequestOptions): Promise<ModelsResponse> {
    return this.get(`${this.baseURL}/models`, {}, options);
  }

  providers(options?: RequestOptions): Promise<ProvidersResponse> {
    return this.get(`${this.baseURL}/providers`, {}, options);
  }

  /** Routable models and, per provider, its model id and whether a platform key is configured. */
  routeModels(options?: RequestOptions): Promise<RouteModelsResponse> {
    return this.get(`${this.baseURL}/route/models`, {}, options);
  }

  // ---- the account API (/v1) ----------------------------------------------------------------

  me(options?: RequestOptions): Promise<MeResponse> {
    return this.get(`${this.origin}/v1/me`, {}, options);
  }

  balance(options?: RequestOptions): Promise<BalanceResponse> {
    return this.get(`${this.origin}/v1/balance`, {}, options);
  }

  /** The summary and the newest logs (`/v1/usage`). */
  usage(params: UsageParams = {}, options?: RequestOptions): Promise<UsageResponse> {
    return this.get(`${this.origin}/v1/usage`, params as Query, options);
  }

  usageSummary(params: UsageParams = {}, options?: RequestOptions): Promise<UsageSummary> {
    return this.get(`${this.origin}/v1/usage/summary`, params as Query, options);
  }

  usageLogs(params: UsageParams = {}, options?: RequestOptions): Promise<List<UsageLog>> {
    return this.get(`${this.origin}/v1/usage/logs`, params as Query, options);
  }

  usageCosts(params: UsageParams = {}, options?: RequestOptions): Promise<List<UsageCost>> {
    return this.get(`${this.origin}/v1/usage/costs`, params as Query, options);
  }

  usageModels(params: UsageParams = {}, options?: RequestOptions): Promise<List<UsageByModel>> {
    return this.get(`${this.origin}/v1/usage/models`, params as Query, options);
  }

  usageKeys(params: UsageParams = {}, options?: RequestOptions): Promise<List<UsageByKey>> {
    return this.get(`${this.origin}/v1/usage/keys`, params as Query, options);
  }

  usageEndpoints(params: UsageParams = {}, options?: RequestOptions): Promise<List<UsageByEndpoint>> {
    return this.get(`${this.origin}/v1/usage/endpoints`, params as Query, options);
  }

  /** Ledger rows (credits, usage), newest first. */
  billingHistory(params: BillingHistoryParams = {}, options?: RequestOptions): Promise<List<BalanceTransaction>> {
    return this.get(`${this.origin}/v1/billing/history`, params as Query, options);
  }

  // ---- live prices --------------------------------------------------------------------------

  /** Each committed price change (optionally of one model / provider, of at least `minChangePct`
   * percent), over GraphQL websockets (`graphql-transport-ws`). Iterate it; `close()` ends it. */
  subscribePrices(params: SubscribePricesParams = {}): PriceSubscription {
    const ws = this.origin.replace(/^http/, "ws") + "/graphql";
    const apiKey = secrets.get(this)!.apiKey;
    return new PriceSubscription(ws, apiKey, params, (m) => this.redact(m));
  }

  // ---- plumbing -----------------------------------------------------------------------------

  private redact(message: string): string {
    return redactSecrets(message, secrets.get(this)!.secretValues);
  }

  private async get<T>(url: string, params: Query, options: RequestOptions = {}): Promise<T> {
    const u = new URL(url);
    for (const [name, value] of Object.entries(params ?? {})) {
      const v = toQueryValue(value);
      if (v !== undefined) u.searchParams.set(snake(name), v);
    }
    const response = await this.send("GET", u.toString(), { options, retries: this.maxRetries });
    return (await this.json(response)) as T;
  }

  private async json(response: Response): Promise<unknown> {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      throw new APIError(`the server answered ${response.status} with a body that is not JSON`, {
        status: response.status,
        requestId: response.headers.get("x-request-id"),
      });
    }
  }

  private headersFor(extra: Record<string, string>, options: RequestOptions): Record<string, string> {
    const s = secrets.get(this)!;
    const h: Record<string, string> = {
      accept: "application/json",
      "user-agent": `coaxiom-sdk-node/${VERSION} node/${process.versions.node}`,
      ...this.defaultHeaders,
      ...(options.headers ?? {}),
      ...extra,
    };
    if (s.apiKey) h.authorization = `Bearer ${s.apiKey}`;
    if (s.providerKeys && !("x-provider-keys" in h)) h["x-provider-keys"] = s.providerKeys;
    return h;
  }

  /** One request with retries; answers the Response of a 2xx, throws a typed error otherwise. */
  private async send(
    method: string,
    url: string,
    req: {
      body?: string;
      headers?: Record<string, string>;
      options: RequestOptions;
      retries: number;
      streamController?: AbortController;
    },
  ): Promise<Response> {
    const { options } = req;
    const headers = this.headersFor(req.headers ?? {}, options);
    const timeoutMs = options.timeout ?? this.timeout;
    for (let attempt = 0; ; attempt++) {
      const controller = req.streamController ?? new AbortController();
      const onAbort = () => controller.abort(options.signal?.reason);
      if (options.signal?.aborted) throw options.signal.reason;
      options.signal?.addEventListener("abort", onAbort, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      let response: Response;
      try {
        response = await this.fetchImpl(url, { method, headers, body: req.body, signal: controller.signal });
      } catch (cause) {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (options.signal?.aborted) throw options.signal.reason;
        const error = timedOut
          ? new APITimeoutError(`request timed out after ${timeoutMs} ms`)
          : new APIConnectionError(
              this.redact(`could not reach ${new URL(url).host}: ${(cause as Error)?.message ?? cause}`),
            );
        if (attempt < req.retries) {
          await sleep(this.backoff(attempt, null), options.signal);
          continue;
        }
        throw error;
      }
      if (response.ok) {
        if (req.streamController) {
          clearTimeout(timer); // a stream may run longer than one request's timeout
        } else {
          const text = await response.text().finally(() => clearTimeout(timer));
          options.signal?.removeEventListener("abort", onAbort);
          return new Response(text, { status: response.status, headers: response.headers });
        }
        return response;
      }
      const error = await this.errorFrom(response).finally(() => clearTimeout(timer));
      options.signal?.removeEventListener("abort", onAbort);
      if (attempt < req.retries && RETRY_STATUSES.has(response.status)) {
        const retryAfter = error instanceof RateLimitError ? error.retryAfter : parseRetryAfter(response.headers.get("retry-after"));
        await sleep(this.backoff(attempt, retryAfter), options.signal);
        continue;
      }
      throw error;
    }
  }

  private backoff(attempt: number, retryAfter: number | null): number {
    if (retryAfter !== null) return Math.min(retryAfter, this.maxRetryDelay) * 1000;
    const base = Math.min(0.5 * 2 ** attempt, 8);
    return Math.min(base * (0.75 + Math.random() * 0.5), this.maxRetryDelay) * 1000;
  }

  private async errorFrom(response: Response): Promise<APIError> {
    const text = await response.text().catch(() => "");
    let body: unknown = text;
    let message = text.trim() || `HTTP ${response.status}`;
    let code: string | number | null = null;
    let type: string | null = null;
    try {
      body = JSON.parse(text);
      const err = (body as { error?: unknown; errors?: unknown }).error;
      if (typeof err === "string") {
        message = err;
        code = (body as { code?: number }).code ?? null;
      } else if (err && typeof err === "object") {
        const e = err as { message?: string; code?: string; type?: string };
        message = e.message ?? message;
        code = e.code ?? null;
        type = e.type ?? null;
      } else if (Array.isArray((body as { errors?: unknown }).errors)) {
        const e = (body as { errors: { message?: string; extensions?: { code?: string } }[] }).errors[0];
        message = e?.message ?? message;
        code = e?.extensions?.code ?? null;
      }
    } catch {
      if (message.length > 500) message = message.slice(0, 500) + "…";
    }
    return errorFor(response.status, this.redact(message), {
      code,
      type,
      body,
      requestId: response.headers.get("x-request-id"),
      retryAfter: parseRetryAfter(response.headers.get("retry-after")),
    });
  }
}
