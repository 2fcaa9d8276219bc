export * from './errors.js';
export * from './guest-memory.js';
export * from './alloc.js';
export * from './mmap-backing.js';
export * from './wasm-backing.js';
