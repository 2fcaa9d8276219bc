export * from './libc.js';
export * from './kvm-abi.js';
