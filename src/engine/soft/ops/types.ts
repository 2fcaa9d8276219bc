/** The shape each instruction family exports: handlers keyed by the table's handler names. */
import type { HandlerName } from '../decode/index.js';
import type { Handler } from '../op.js';

export type HandlerMap = Partial<Record<HandlerName, Handler>>;
