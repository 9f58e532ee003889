/** Response and request shapes of the Pricegraph / Coaxiom API. Prices from REST are JSON numbers (USD
 * per 1M tokens); GraphQL `Decimal` values (subscriptions) arrive as exact decimal strings. */

export type Decimal = string;
export type OfferStatus = "live" | "stale" | "unavailable";

// ---- price API (/api/v1) ----------------------------------------------------------------------

export interface Price {
  provider: string;
  input_per_1m: number | null;
  output_per_1m: number | null;
  blended_per_1m: number | null;
  context_window: number | null;
  status: OfferStatus | string;
  model?: string;
  variant?: string;
  provider_model_id?: string | null;
  supports_vision?: boolean | null;
  supports_tools?: boolean | null;
  updated_at?: string | null;
  price_kind?: "priced" | "free" | "unpriced" | string;
  pricing?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface PricesResponse {
  model: string | null;
  updated_at: string | null;
  prices: Price[];
}

export interface PricesParams {
  model?: string;
  provider?: string;
  [extra: string]: string | number | boolean | undefined;
}

export interface Candle {
  /** `YYYY-MM-DD` for daily candles, an ISO timestamp for hourly ones. */
  date: string;
  open: number;
  high: number;
  low: number;
  close: number;
  change_pct: number | null;
  timestamp?: string;
  ticks?: number;
  [extra: string]: unknown;
}

export interface HistoryResponse {
  model: string;
  provider: string;
  interval: "1d" | "1h" | string;
  variant?: string;
  dimension?: string;
  candles: Candle[];
}

export interface HistoryParams {
  model: string;
  provider: string;
  days?: number;
  interval?: "1d" | "1h";
  variant?: string;
  dimension?: "blended" | "input" | "output" | "cache_read";
}

export interface CompareEntry {
  model: string;
  cheapest_provider: string | null;
  cheapest_blended: number | null;
  avg_blended: number | null;
  provider_count: number;
  [extra: string]: unknown;
}

export interface CompareResponse {
  updated_at: string | null;
  models: CompareEntry[];
}

export interface CompareParams {
  /** Up to 5 slugs, as an array or a comma-separated string. */
  models: string[] | string;
  provider?: string;
}

export interface ModelInfo {
  slug: string;
  display_name: string;
  family: string | null;
  params_b: number | null;
  context_window: number | null;
  provider_count: number;
  is_benchmark: boolean;
  [extra: string]: unknown;
}

export interface ModelsResponse {
  models: ModelInfo[];
}

export interface ProviderInfo {
  slug: string;
  name: string;
  model_count: number;
  status: "operational" | "degraded" | string;
  signup_url: string | null;
  [extra: string]: unknown;
}

export interface ProvidersResponse {
  providers: ProviderInfo[];
}

export interface RouteModelProvider {
  provider: string;
  model_id: string;
  configured: boolean;
}

export interface RouteModelsResponse {
  models: { slug: string; providers: RouteModelProvider[] }[];
  count: number;
}

// ---- gateway ----------------------------------------------------------------------------------

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool" | "developer" | string;
  content: string | null | Array<Record<string, unknown>>;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  [extra: string]: unknown;
}

export interface ToolCall {
  id: string;
  type: "function" | string;
  function: { name: string; arguments: string };
}

export interface ProviderPreferences {
  order?: string[];
  only?: string[];
  ignore?: string[];
  sort?: "price" | "latency" | "throughput";
  allow_fallbacks?: boolean;
  max_price?: { prompt?: number; completion?: number };
}

export interface ChatParams {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string | string[];
  tools?: Array<Record<string, unknown>>;
  tool_choice?: unknown;
  response_format?: Record<string, unknown>;
  /** OpenRouter-style routing preferences (not forwarded upstream). */
  provider?: ProviderPreferences;
  /** Anything else goes upstream as sent. */
  [extra: string]: unknown;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Milliseconds; overrides the client's `timeout`. */
  timeout?: number;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Provider keys for this request only (replacing the client's). */
  providerKeys?: Record<string, string>;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  [extra: string]: unknown;
}

export interface CoaxiomMeta {
  provider: string;
  provider_name: string;
  model_slug: string;
  provider_model_id: string;
  routed_by_price: boolean;
  price_per_1m_usd: number | null;
  latency_ms: number;
  key_source: "customer" | "platform" | string;
  version: string;
  [extra: string]: unknown;
}

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: {
    index: number;
    message: ChatMessage;
    finish_reason: string | null;
    logprobs?: unknown;
  }[];
  usage?: Usage;
  system_fingerprint?: string;
  _coaxiom: CoaxiomMeta;
  [extra: string]: unknown;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: {
    index: number;
    delta: Partial<ChatMessage> & { tool_calls?: Array<Partial<ToolCall> & { index: number }> };
    finish_reason: string | null;
  }[];
  usage?: Usage | null;
  /** Only on the last chunk before `[DONE]` (whose `choices` is empty). */
  _coaxiom?: CoaxiomMeta;
  [extra: string]: unknown;
}

// ---- account (/v1) ----------------------------------------------------------------------------

export interface Account {
  object: "account";
  id: string;
  name: string;
  plan: "free" | "developer" | "team" | "enterprise" | string;
  created: number;
}

export interface ApiKeyInfo {
  object: "api_key";
  id: string;
  name: string;
  prefix: string;
  created: number;
  last_used: number | null;
}

export interface Customer {
  object: "customer";
  id: string;
  name: string;
  plan: string;
  balance: number;
  held: number;
  available: number;
  currency: string;
  [extra: string]: unknown;
}

export interface Quota {
  limit: number | null;
  remaining: number | null;
  reset: number | null;
}

export interface MeResponse {
  object: "me";
  account: Account;
  api_key: ApiKeyInfo;
  customer: Customer;
  quota: Quota;
}

export interface BalanceResponse {
  object: "balance";
  balance: number;
  held: number;
  available: number;
  currency: string;
}

export interface CostBreakdown {
  input: number;
  cache_read: number;
  cache_write: number;
  output: number;
  reasoning: number;
  request: number;
  search: number;
  [extra: string]: number;
}

export interface UsageTotals {
  total_requests: number;
  successful_requests: number;
  failed_requests: number;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  total_cost: number;
  cost_breakdown: CostBreakdown;
}

export interface UsageByModel extends UsageTotals {
  object: "usage.model";
  model: string;
}

export interface UsageByEndpoint extends UsageTotals {
  object: "usage.endpoint";
  endpoint: string;
}

export interface UsageByKey extends UsageTotals {
  object: "usage.key";
  key_id: string;
  name: string;
  prefix: string;
  revoked: boolean;
}

export interface UsageCost extends UsageTotals {
  object: "usage.cost";
  date: string;
  start_time: number;
  end_time: number;
}

export interface UsageSummary extends UsageTotals {
  object: "usage.summary";
  currency: string;
  by_model: UsageByModel[];
  by_endpoint: UsageByEndpoint[];
  period?: string | null;
  start_time?: number | null;
  end_time?: number | null;
}

export interface UsageLog {
  object: "usage.log";
  id: string;
  request_id: string;
  created: number;
  model: string;
  provider: string;
  variant: string;
  endpoint: string;
  key_id: string;
  key_source: "customer" | "platform" | string;
  status: number;
  success: boolean;
  input_tokens: number;
  output_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  estimated: boolean;
  cost: number;
  cost_breakdown: CostBreakdown;
  currency: string;
  latency_ms: number | null;
  [extra: string]: unknown;
}

export interface List<T> {
  object: "list";
  data: T[];
  has_more: boolean;
  [extra: string]: unknown;
}

export interface UsageResponse {
  object: "usage";
  period: string | null;
  start_time: number | null;
  end_time: number | null;
  summary: UsageSummary;
  logs: List<UsageLog>;
}

export interface UsageParams {
  period?: "24h" | "7d" | "30d" | "90d";
  /** Unix seconds, Unix milliseconds, a Date or a date string. */
  startTime?: number | string | Date;
  endTime?: number | string | Date;
  /** A slug (every provider) or `provider/model`. */
  model?: string;
  keyId?: string;
  endpoint?: string;
  limit?: number;
  startingAfter?: string;
}

export interface BalanceTransaction {
  object: "balance_transaction";
  id: string;
  created: number;
  type: "credit" | "usage" | string;
  amount: number;
  currency: string;
  balance_after: number;
  description: string;
  metadata: Record<string, unknown>;
}

export interface BillingHistoryParams {
  period?: "24h" | "7d" | "30d" | "90d";
  limit?: number;
  startingAfter?: string;
  startTime?: number | string | Date;
  endTime?: number | string | Date;
  type?: string;
}

// ---- subscriptions ----------------------------------------------------------------------------

export interface PriceTick {
  model: string;
  provider: string;
  variant: string;
  inputPer1m: Decimal;
  outputPer1m: Decimal;
  blendedPer1m: Decimal;
  previousBlendedPer1m: Decimal | null;
  changePct: Decimal | null;
  status: "LIVE" | "STALE" | "UNAVAILABLE" | string;
  observedAt: string;
}

export interface SubscribePricesParams {
  model?: string;
  provider?: string;
  /** Only moves of at least this many percent. */
  minChangePct?: number | string;
  signal?: AbortSignal;
}
