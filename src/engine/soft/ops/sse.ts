import type { HandlerMap } from './types.js';
export const SSE: HandlerMap = {};
