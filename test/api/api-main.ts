/**
 * `typevisor api` as a process, for the tests: the same option parsing the
 * CLI's main does, then apiCommand. (Runs from dist/test/api/.)
 */
import { parseArgs } from 'node:util';
import { API_OPTIONS, apiCommand } from '../../src/cli/api.js';

try {
  const { values } = parseArgs({ args: process.argv.slice(2), options: API_OPTIONS, strict: true, allowPositionals: false });
  process.exitCode = await apiCommand(values, process.stderr, { stdout: process.stdout });
} catch (e) {
  process.stderr.write(`typevisor: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
