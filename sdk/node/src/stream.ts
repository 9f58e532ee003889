import { APIConnectionError, errorFor } from "./errors.js";
import type { ChatCompletionChunk, CoaxiomMeta, Usage } from "./types.js";

/** A streamed chat completion: an async iterator of `chat.completion.chunk` objects as the gateway
 * relays them (the usage chunk and the final `_coaxiom` chunk, whose `choices` is empty, included).
 * After the stream ends, `coaxiom` holds the routing block, `usage` the usage, `content` the text. */
export class ChatStream implements AsyncIterable<ChatCompletionChunk> {
  /** The `_coaxiom` routing block, set when its chunk arrives (just before `[DONE]`). */
  coaxiom: CoaxiomMeta | undefined;
  usage: Usage | undefined;
  /** The concatenated `delta.content` of choice 0 so far. */
  content = "";
  readonly response: Response;
  private readonly controller: AbortController;
  private readonly redact: (m: string) => string;
  private started = false;
  private done = false;

  constructor(response: Response, controller: AbortController, redact: (m: string) => string) {
    this.response = response;
    this.controller = controller;
    this.redact = redact;
  }

  /** Stop reading (the gateway cancels the upstream request). */
  abort(): void {
    this.controller.abort();
  }

  /** Read the rest of the stream and answer the `_coaxiom` block. */
  async finalCoaxiom(): Promise<CoaxiomMeta | undefined> {
    if (!this.started) for await (const _ of this);
    return this.coaxiom;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ChatCompletionChunk> {
    if (this.started) throw new Error("a ChatStream can be iterated once");
    this.started = true;
    const body = this.response.body;
    if (!body) return;
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (cause) {
          if (this.done) return;
          throw new APIConnectionError(this.redact(`the stream broke: ${(cause as Error)?.message ?? cause}`));
        }
        if (chunk.done) buffer += decoder.decode();
        else buffer += decoder.decode(chunk.value, { stream: true });
        buffer = buffer.replace(/\r\n?/g, "\n");
        let cut: number;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const parsed = this.parse(event);
          if (parsed === "done") {
            this.done = true;
            return;
          }
          if (parsed) yield parsed;
        }
        if (chunk.done) {
          const parsed = buffer.trim() ? this.parse(buffer) : null;
          if (parsed && parsed !== "done") yield parsed;
          return;
        }
      }
    } finally {
      this.done = true;
      reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }

  private parse(event: string): ChatCompletionChunk | "done" | null {
    const data = event
      .split("\n")
      .filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""))
      .join("\n");
    if (!data) return null;
    if (data.trim() === "[DONE]") return "done";
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      return null;
    }
    const error = (json as { error?: { message?: string; code?: string | number; type?: string; status?: number } }).error;
    if (error && typeof error === "object") {
      const status = typeof error.status === "number" ? error.status : typeof error.code === "number" ? error.code : 502;
      throw errorFor(status, this.redact(error.message ?? "the stream ended with an error"), {
        code: error.code ?? null,
        type: error.type ?? null,
        body: json,
      });
    }
    const c = json as ChatCompletionChunk;
    if (c._coaxiom) this.coaxiom = c._coaxiom;
    if (c.usage) this.usage = c.usage;
    const text = c.choices?.[0]?.delta?.content;
    if (typeof text === "string") this.content += text;
    return c;
  }
}
