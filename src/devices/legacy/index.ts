export * from './common.js';
export * from './serial.js';
export * from './i8042.js';
export * from './rtc.js';
export * from './acpi-power.js';
export * from './debug-port.js';
