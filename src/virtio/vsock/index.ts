export * from './backend.js';
export * from './device.js';
export * from './metrics.js';
export * from './packet.js';
