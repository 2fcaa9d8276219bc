import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAYOUTS, KVM } from '../../src/native/index.js';

const HEADER = '/usr/include/linux/kvm.h';

/** Compiles and runs a C program printing `name value` lines; undefined when no compiler/header. */
function cFacts(body: string): Map<string, number> | string {
  if (!existsSync(HEADER)) return `${HEADER} is absent (apt-get install linux-libc-dev)`;
  if (spawnSync('gcc', ['--version']).status !== 0) return 'gcc is not installed';
  const dir = mkdtempSync(join(tmpdir(), 'kvm-abi-'));
  try {
    const src = join(dir, 'abi.c');
    writeFileSync(src, `#include <linux/kvm.h>\n#include <stddef.h>\n#include <stdio.h>\nint main(void) {\n${body}return 0;\n}\n`);
    execFileSync('gcc', ['-o', join(dir, 'abi'), src]);
    const out = execFileSync(join(dir, 'abi'), { encoding: 'utf8' });
    return new Map(out.trim().split('\n').map((l) => {
      const [k, v] = l.split(' ');
      return [k!, Number(v)];
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('native/kvm-abi: every struct size, field offset and field size matches <linux/kvm.h>', (t) => {
  let body = '';
  for (const s of LAYOUTS) {
    body += `printf("${s.name} %zu\\n", sizeof(struct ${s.name}));\n`;
    for (const f of Object.keys(s.fields)) {
      body += `printf("${s.name}.${f}@ %zu\\n", offsetof(struct ${s.name}, ${f}));\n`;
      body += `printf("${s.name}.${f}# %zu\\n", sizeof(((struct ${s.name} *)0)->${f}));\n`;
    }
  }
  const facts = cFacts(body);
  if (typeof facts === 'string') return t.skip(facts);
  let checked = 0;
  for (const s of LAYOUTS) {
    assert.equal(s.size, facts.get(s.name), `sizeof(struct ${s.name})`);
    for (const [f, { offset, size }] of Object.entries(s.fields)) {
      assert.equal(offset, facts.get(`${s.name}.${f}@`), `offsetof(struct ${s.name}, ${f})`);
      assert.equal(size, facts.get(`${s.name}.${f}#`), `sizeof(${s.name}.${f})`);
      checked++;
    }
  }
  assert.ok(checked > 100);
});

test('native/kvm-abi: every ioctl number matches the header macro', (t) => {
  const body = Object.keys(KVM).map((k) => `printf("${k} %lu\\n", (unsigned long)KVM_${k});\n`).join('');
  const facts = cFacts(body);
  if (typeof facts === 'string') return t.skip(facts);
  for (const [k, v] of Object.entries(KVM)) assert.equal(v, facts.get(k), `KVM_${k}`);
});
