export * from './backend.js';
export * from './device.js';
export * from './mac.js';
export * from './metrics.js';
