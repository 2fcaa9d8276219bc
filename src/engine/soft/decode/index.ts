/**
 * The soft engine's x86 instruction decoder: TABLE (the instruction set as
 * data), the decoder driven by it, and Intel-syntax text for tests and traces.
 */
export { TABLE, type TableRow, type HandlerName, type CpuFeature, type FlowClass } from './table.js';
export { FORMS, HANDLER_NAMES, TableError, compileTable, type Form, type OperandSpec } from './forms.js';
export * from './instruction.js';
export { decode } from './decoder.js';
export { mnemonic, formatInstruction, gprName } from './mnemonic.js';
