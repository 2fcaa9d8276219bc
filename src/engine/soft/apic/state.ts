/**
 * Validation of restored interrupt-controller state, through the shared
 * state reader (src/state).
 */
import { StateError, StateReader as BaseStateReader } from '../../../state/reader.js';

/** A saved APIC/IOAPIC/TSC state that cannot be restored; the message names the component and the field. */
export class ApicStateError extends StateError {
  override name = 'ApicStateError';
}

export class StateReader extends BaseStateReader {
  constructor(component: string, state: unknown) {
    super(component, state, ApicStateError);
  }
}
