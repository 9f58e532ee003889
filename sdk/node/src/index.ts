export { CoaxiomClient, DEFAULT_BASE_URL, VERSION, encodeProviderKeys } from "./client.js";
export type { CoaxiomClientOptions } from "./client.js";
export { ChatStream } from "./stream.js";
export { PriceSubscription } from "./subscribe.js";
export {
  APIError,
  APIConnectionError,
  APITimeoutError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
  PaymentRequiredError,
  PermissionDeniedError,
  RateLimitError,
} from "./errors.js";
export type * from "./types.js";
export { CoaxiomClient as default } from "./client.js";
