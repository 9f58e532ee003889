import { APIConnectionError, APIError, GRAPHQL_STATUS, errorFor } from "./errors.js";
import type { PriceTick, SubscribePricesParams } from "./types.js";

const PRICE_CHANGED = `subscription PriceChanged($model: String, $provider: String, $minChangePct: Decimal) {
  priceChanged(model: $model, provider: $provider, minChangePct: $minChangePct) {
    model provider variant inputPer1m outputPer1m blendedPer1m previousBlendedPer1m changePct status observedAt
  }
}`;

/** The minimal WebSocket surface used here (the WHATWG one; `ws` implements it too). */
interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}
type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocketLike;

async function webSocketClass(): Promise<WebSocketCtor> {
  const native = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (typeof native === "function") return native;
  const name = "ws"; // a variable: neither tsc nor bundlers require the optional peer dependency
  try {
    const mod: any = await import(name);
    return (mod.WebSocket ?? mod.default) as WebSocketCtor;
  } catch {
    throw new APIConnectionError(
      "subscribePrices needs a WebSocket: Node 22+ has one built in; on Node 20 install the `ws` package",
    );
  }
}

const CLOSE_STATUS: Record<number, number> = { 4400: 400, 4401: 400, 4403: 401, 4408: 408, 4409: 400, 4429: 429, 1009: 413, 1013: 429 };

/** An async iterator of price ticks over `graphql-transport-ws`. `ready` resolves once the server has
 * acknowledged the connection and the subscription was sent; `close()` ends the iteration. */
export class PriceSubscription implements AsyncIterable<PriceTick> {
  readonly ready: Promise<void>;
  private socket: WebSocketLike | null = null;
  private readonly queue: PriceTick[] = [];
  private waiters: { resolve: (r: IteratorResult<PriceTick>) => void; reject: (e: unknown) => void }[] = [];
  private failure: unknown = null;
  private ended = false;
  private closedByUs = false;

  constructor(
    url: string,
    apiKey: string | undefined,
    params: SubscribePricesParams,
    private readonly redact: (m: string) => string,
  ) {
    const variables: Record<string, string> = {};
    if (params.model != null) variables.model = params.model;
    if (params.provider != null) variables.provider = params.provider;
    if (params.minChangePct != null) variables.minChangePct = String(params.minChangePct);
    this.ready = this.open(url, apiKey, variables);
    this.ready.catch(() => {}); // surfaced through the iterator too
    params.signal?.addEventListener("abort", () => this.close(), { once: true });
  }

  private async open(url: string, apiKey: string | undefined, variables: Record<string, string>): Promise<void> {
    let WS: WebSocketCtor;
    try {
      WS = await webSocketClass();
    } catch (e) {
      this.fail(e);
      throw e;
    }
    if (this.closedByUs) return;
    return new Promise<void>((resolve, reject) => {
      let acked = false;
      const ws = new WS(url, "graphql-transport-ws");
      this.socket = ws;
      ws.addEventListener("open", () => {
        ws.send(JSON.stringify({ type: "connection_init", payload: apiKey ? { Authorization: `Bearer ${apiKey}` } : {} }));
      });
      ws.addEventListener("message", (event: { data: unknown }) => {
        let msg: { type?: string; id?: string; payload?: any };
        try {
          msg = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
        } catch {
          return;
        }
        switch (msg.type) {
          case "connection_ack":
            acked = true;
            ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: PRICE_CHANGED, variables } }));
            resolve();
            break;
          case "ping":
            ws.send(JSON.stringify({ type: "pong" }));
            break;
          case "next": {
            const errors = msg.payload?.errors;
            if (Array.isArray(errors) && errors.length && !msg.payload?.data?.priceChanged) {
              this.fail(graphqlError(errors, this.redact));
              ws.close(1000);
              break;
            }
            const tick = msg.payload?.data?.priceChanged as PriceTick | undefined;
            if (tick) this.push(tick);
            break;
          }
          case "error":
            this.fail(graphqlError(Array.isArray(msg.payload) ? msg.payload : [msg.payload], this.redact));
            ws.close(1000);
            break;
          case "complete":
            this.finish();
            ws.close(1000);
            break;
        }
      });
      ws.addEventListener("error", (event: { message?: string; error?: Error }) => {
        const detail = event?.message ?? event?.error?.message ?? "websocket error";
        const e = new APIConnectionError(this.redact(`subscription connection failed: ${detail}`));
        if (!acked) reject(e);
        if (!this.closedByUs) this.fail(e);
      });
      ws.addEventListener("close", (event: { code: number; reason?: string }) => {
        if (this.closedByUs || this.ended) {
          this.finish();
        } else {
          const status = CLOSE_STATUS[event.code] ?? (event.code === 1000 ? 0 : 502);
          const message = this.redact(event.reason || `the subscription closed (code ${event.code})`);
          const e = status ? errorFor(status, message, { code: event.code }) : null;
          if (e) this.fail(e);
          else this.finish();
          if (!acked) reject(e ?? new APIConnectionError(message));
        }
      });
    });
  }

  /** End the subscription and the iteration. */
  close(): void {
    this.closedByUs = true;
    const ws = this.socket;
    if (ws && ws.readyState === 1) {
      try {
        ws.send(JSON.stringify({ id: "1", type: "complete" }));
      } catch {
        /* closing anyway */
      }
    }
    try {
      ws?.close(1000);
    } catch {
      /* already closed */
    }
    this.finish();
  }

  private push(tick: PriceTick): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve({ value: tick, done: false });
    else this.queue.push(tick);
  }

  private fail(error: unknown): void {
    if (this.ended) return;
    this.failure = error;
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.reject(error);
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<PriceTick> {
    return {
      next: () => {
        const tick = this.queue.shift();
        if (tick) return Promise.resolve({ value: tick, done: false });
        if (this.ended) {
          if (this.failure) {
            const f = this.failure;
            this.failure = null;
            return Promise.reject(f);
          }
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

function graphqlError(errors: any[], redact: (m: string) => string): APIError {
  const first = errors[0] ?? {};
  const code: string | undefined = first?.extensions?.code;
  const status = (code && GRAPHQL_STATUS[code]) || 400;
  const retryAfter = typeof first?.extensions?.retryAfter === "number" ? first.extensions.retryAfter : null;
  return errorFor(status, redact(String(first?.message ?? "subscription error")), { code: code ?? null, body: errors, retryAfter });
}
