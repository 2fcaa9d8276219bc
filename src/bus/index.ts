export * from './bus.js';
export * from './irq.js';
