import type { HandlerMap } from './types.js';
export const X87: HandlerMap = {};
