import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readdirSync } from 'node:fs';
import { kvmOrSkip } from './mini-guest.js';

const child = fileURLToPath(new URL('./fixtures/natural-exit.js', import.meta.url));

for (const mode of ['close', 'no-close'] as const) {
  test(`kvm: a process that ran a VM exits by itself (${mode === 'close' ? 'after close()' : 'without close()'})`, (t) => {
    const engine = kvmOrSkip(t);
    if (!engine) return;
    engine.close();
    const r = spawnSync(process.execPath, [child, 'run', mode], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.error, undefined, 'the child exited before the timeout');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'poweroff hiyo!\n');
  });
}

test('kvm: close() releases every fd the VM opened', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { longModeGuest, guestBytes, RecordingDispatcher } = await import('./mini-guest.js');
  const fds = () => readdirSync('/proc/self/fd').length;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('halt'));
  const before = fds();
  const vm = await engine.createVm({ memory, cpus: 3, boot, dispatcher: new RecordingDispatcher() });
  assert.ok(fds() >= before + 4, 'a VM fd and one fd per vCPU while it exists');
  const running = vm.run();
  await vm.close();
  assert.deepEqual(await running, { reason: 'host-stop' });
  assert.equal(fds(), before);
  engine.close();
});
