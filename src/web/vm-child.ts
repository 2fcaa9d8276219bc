/**
 * The VMM process behind one VM of the web console: `typevisor api` on the
 * given socket, with the guest's serial console on this process's
 * stdin/stdout. `typevisor api` reads stdin only when it is a terminal (a
 * user at a shell); here stdin is the console server's pipe, so it is handed
 * over explicitly.
 *
 *   node vm-child.js --api-sock PATH --id ID
 */
import { parseArgs } from 'node:util';
import { apiCommand } from '../cli/api.js';
import { VmmError } from '../vmm/errors.js';
import { EXIT } from '../vmm/exit-status.js';

const { values } = parseArgs({ options: { 'api-sock': { type: 'string' }, id: { type: 'string' } }, strict: true });
try {
  process.exitCode = await apiCommand({ ...values }, process.stderr, { stdin: process.stdin, stdout: process.stdout });
} catch (e) {
  process.stderr.write(`typevisor: ${e instanceof VmmError ? '' : 'internal error: '}${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = EXIT.VMM_ERROR;
}
// The console keeps stdin open; nothing else is left to do once the VM is gone.
process.stdin.destroy();
