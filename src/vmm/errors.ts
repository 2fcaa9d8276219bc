/**
 * Errors the VMM reports to whoever drives it (CLI, REST API, library).
 * `code` lets front ends map them (REST: 400 vs 500; CLI: exit status).
 */
export type VmmErrorCode =
  /** A configuration value is malformed or out of range. */
  | 'invalid-config'
  /** A file named in the configuration is missing, unreadable or not what it claims to be. */
  | 'bad-file'
  /** The action is not allowed in the VM's current phase (e.g. start twice, configure after start). */
  | 'wrong-phase'
  /** The requested engine cannot run here. */
  | 'engine-unavailable'
  /** Something failed inside the VMM while building or running the VM. */
  | 'internal';

export class VmmError extends Error {
  override name = 'VmmError';
  constructor(
    readonly code: VmmErrorCode,
    message: string,
  ) {
    super(message);
  }
}
