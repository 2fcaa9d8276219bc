import { VmmError } from '../vmm/errors.js';

/** HTTP statuses the API answers with (RFC 9110 §15). */
export const HTTP = {
  OK: 200,
  NO_CONTENT: 204,
  BAD_REQUEST: 400,
  INTERNAL_SERVER_ERROR: 500,
} as const;

/**
 * A refused request: the status and the `fault_message` the client gets.
 * Firecracker answers every refusal it can attribute to the request, and
 * every failed VMM action, with 400; only the unexpected is a 500.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }

  static badRequest(message: string): ApiError {
    return new ApiError(HTTP.BAD_REQUEST, message);
  }

  /** The action was refused because of the VM's phase (Firecracker's OperationNotSupportedPre/PostBoot). */
  static notBeforeStart(what: string): ApiError {
    return ApiError.badRequest(`${what} is not supported before starting the microVM (send InstanceStart first)`);
  }

  static notAfterStart(what: string): ApiError {
    return ApiError.badRequest(`${what} is not supported after starting the microVM`);
  }

  /**
   * Maps anything a handler threw to an ApiError. A VmmError is a failed
   * action, which Firecracker reports as 400 whatever the cause; anything
   * else is our fault: 500.
   */
  static from(e: unknown): ApiError {
    if (e instanceof ApiError) return e;
    if (e instanceof VmmError) return new ApiError(HTTP.BAD_REQUEST, e.message);
    const msg = e instanceof Error ? e.message : String(e);
    return new ApiError(HTTP.INTERNAL_SERVER_ERROR, `internal error: ${msg}`);
  }
}
