export * from './backend.js';
export * from './device.js';
export * from './metrics.js';
export * from './request.js';
export * from './state.js';
