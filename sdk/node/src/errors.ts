/** Typed errors. Every error carries the HTTP `status` (0 for a connection failure) and the server's
 * own message; none ever holds the API key or a provider key. */

export interface ErrorDetails {
  status: number;
  /** The server's machine-readable code (`model_not_found`, `RATE_LIMITED`, 404, …) when it sent one. */
  code?: string | number | null;
  /** OpenAI-shaped errors' `type` (`not_found_error`, …). */
  type?: string | null;
  /** The parsed error body, as sent. */
  body?: unknown;
  /** The request id the server answered with (`x-request-id`), when any. */
  requestId?: string | null;
}

export class APIError extends Error {
  readonly status: number;
  readonly code: string | number | null;
  readonly type: string | null;
  readonly body: unknown;
  readonly requestId: string | null;

  constructor(message: string, details: ErrorDetails) {
    super(message);
    this.name = new.target.name;
    this.status = details.status;
    this.code = details.code ?? null;
    this.type = details.type ?? null;
    this.body = details.body;
    this.requestId = details.requestId ?? null;
  }
}

/** 400: a missing or bad parameter (or a malformed `X-Provider-Keys`). */
export class BadRequestError extends APIError {}
/** 401: a missing, invalid or revoked API key. */
export class AuthenticationError extends APIError {}
/** 402: above the plan, or the prepaid balance cannot cover the request. */
export class PaymentRequiredError extends APIError {}
/** 403: not allowed. */
export class PermissionDeniedError extends APIError {}
/** 404: unknown model, provider or offer. */
export class NotFoundError extends APIError {}
/** 429: quota or rate limit; `retryAfter` is in seconds (null when the server did not say). */
export class RateLimitError extends APIError {
  readonly retryAfter: number | null;
  constructor(message: string, details: ErrorDetails & { retryAfter?: number | null }) {
    super(message, details);
    this.retryAfter = details.retryAfter ?? null;
  }
}
/** 5xx. */
export class InternalServerError extends APIError {}
/** The server could not be reached, or the connection broke (status 0). */
export class APIConnectionError extends APIError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, { status: 0 });
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}
/** The request took longer than the client's `timeout` (status 0). */
export class APITimeoutError extends APIConnectionError {}

export function errorFor(
  status: number,
  message: string,
  details: Omit<ErrorDetails, "status"> & { retryAfter?: number | null } = {},
): APIError {
  const d = { ...details, status };
  switch (status) {
    case 400:
    case 413:
    case 422:
      return new BadRequestError(message, d);
    case 401:
      return new AuthenticationError(message, d);
    case 402:
      return new PaymentRequiredError(message, d);
    case 403:
      return new PermissionDeniedError(message, d);
    case 404:
      return new NotFoundError(message, d);
    case 429:
      return new RateLimitError(message, d);
    default:
      return status >= 500 ? new InternalServerError(message, d) : new APIError(message, d);
  }
}

/** GraphQL `extensions.code` → the HTTP status the REST API would have answered. */
export const GRAPHQL_STATUS: Record<string, number> = {
  BAD_USER_INPUT: 400,
  GRAPHQL_PARSE_FAILED: 400,
  GRAPHQL_VALIDATION_FAILED: 400,
  QUERY_TOO_COMPLEX: 400,
  REQUEST_TOO_LARGE: 413,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  PAYMENT_REQUIRED: 402,
  NOT_FOUND: 404,
  RATE_LIMITED: 429,
  DEADLINE_EXCEEDED: 504,
  RESPONSE_TOO_LARGE: 500,
  INTERNAL_SERVER_ERROR: 500,
};

/** Seconds from a `Retry-After` header (delta-seconds or an HTTP date); null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (value == null || value.trim() === "") return null;
  const n = Number(value.trim());
  if (Number.isFinite(n)) return Math.max(0, n);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - now) / 1000);
}
