export * from './chain.js';
export * from './device.js';
export * from './mmio.js';
export * from './queue.js';
export * from './rate-limiter.js';
export * from './rng/index.js';
export * from './blk/index.js';
