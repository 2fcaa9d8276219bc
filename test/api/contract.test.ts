/**
 * The server against its contract, docs/api/openapi.yaml: the same
 * operations, the same request models field by field, and every response
 * of a run through every operation shaped as documented.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiController } from '../../src/api/index.js';
import { REQUEST_MODELS } from '../../src/api/models.js';
import { parseModel, type AnyObjectSpec, type Spec } from '../../src/api/schema.js';
import { Contract, type JsonSchema } from './contract.js';
import { startHarness } from './client.js';

const contract = new Contract();

test('contract: the document is OpenAPI 3.1 and every $ref resolves', () => {
  assert.equal(contract.doc.openapi, '3.1.0');
  const text = JSON.stringify(contract.doc);
  for (const m of text.matchAll(/"\$ref":"#\/components\/(\w+)\/(\w+)"/g)) {
    const group = (contract.doc.components as unknown as Record<string, Record<string, unknown>>)[m[1]!];
    assert.ok(group?.[m[2]!], `dangling $ref #/components/${m[1]}/${m[2]}`);
  }
});

test('contract: every documented operation is served and nothing served is undocumented', () => {
  const served = new ApiController().served.map((r) => `${r.method} ${r.path}`).sort();
  assert.deepEqual(served, contract.operations());
});

function compareSpec(spec: Spec, schema: JsonSchema, where: string): void {
  if (schema.$ref) {
    assert.equal(spec.type, 'object', `${where}: the document refers to a model, the server has ${spec.type}`);
    assert.equal(`#/components/schemas/${(spec as AnyObjectSpec).name}`, schema.$ref, where);
    return;
  }
  switch (spec.type) {
    case 'object':
      return compareModel(spec, schema, where);
    case 'map':
      assert.equal(schema.type, 'object', where);
      assert.deepEqual(schema.additionalProperties, { type: 'string' }, where);
      return;
    case 'string':
      assert.equal(schema.type, 'string', where);
      assert.deepEqual(schema.enum, spec.enum, `${where}: enum`);
      assert.equal(schema.minLength, spec.minLength, `${where}: minLength`);
      assert.equal(schema.maxLength, spec.maxLength, `${where}: maxLength`);
      assert.equal(schema.pattern, spec.pattern, `${where}: pattern`);
      return;
    case 'integer':
      assert.equal(schema.type, 'integer', where);
      assert.equal(schema.minimum, spec.minimum, `${where}: minimum`);
      assert.equal(schema.maximum, spec.maximum, `${where}: maximum`);
      return;
    case 'boolean':
      assert.equal(schema.type, 'boolean', where);
  }
}

function compareModel(spec: AnyObjectSpec, schema: JsonSchema, where: string): void {
  assert.equal(schema.type, 'object', where);
  assert.equal(schema.additionalProperties, false, `${where}: unknown fields must be refused`);
  assert.deepEqual(Object.keys(schema.properties ?? {}).sort(), Object.keys(spec.properties).sort(), `${where}: fields`);
  assert.deepEqual([...(schema.required ?? [])].sort(), [...spec.required].sort(), `${where}: required fields`);
  for (const [name, p] of Object.entries(spec.properties)) compareSpec(p, schema.properties![name]!, `${where}.${name}`);
}

test('contract: each request model the server parses is the document\'s schema, field by field', () => {
  for (const spec of REQUEST_MODELS) {
    const schema = contract.doc.components.schemas[spec.name];
    assert.ok(schema, `schema ${spec.name} is missing from the document`);
    compareModel(spec, schema, spec.name);
  }
});

test('contract: every request example is valid under its schema and accepted by the server\'s parser', () => {
  const byName = new Map(REQUEST_MODELS.map((m) => [m.name, m]));
  let n = 0;
  for (const op of contract.operations()) {
    const [method, path] = op.split(' ') as [string, string];
    const body = contract.operation(method, path).requestBody?.content['application/json'];
    if (!body) continue;
    assert.ok('example' in body, `${op} has no request example`);
    assert.deepEqual(contract.validate(body.schema, body.example), [], `${op} example`);
    const spec = byName.get(body.schema.$ref!.replace('#/components/schemas/', ''));
    assert.ok(spec, `${op}: no server model for ${body.schema.$ref}`);
    assert.doesNotThrow(() => parseModel(body.example, spec), `${op} example`);
    n++;
  }
  assert.equal(n, 14);
});

test('contract: the validator itself refuses wrong shapes (so a pass means something)', () => {
  const err = { $ref: '#/components/schemas/Error' };
  assert.deepEqual(contract.validate(err, { fault_message: 'x' }), []);
  assert.notDeepEqual(contract.validate(err, { fault_message: 1 }), []);
  assert.notDeepEqual(contract.validate(err, { fault_message: 'x', extra: 1 }), []);
  assert.notDeepEqual(contract.checkResponse('GET', '/', 204, undefined), []);
  assert.notDeepEqual(contract.checkResponse('PUT', '/vsock', 200, {}), []);
});

test('contract: every response of a pre-boot run through all operations is documented and shaped as documented', async () => {
  const h = await startHarness();
  try {
    const kernel = join(h.dir, 'vmlinux');
    writeFileSync(kernel, 'not really a kernel');
    const disk = join(h.dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(4096));
    // [method, template, concrete path, body]: successes and refusals of each operation.
    const calls: [string, string, string, unknown][] = [
      ['GET', '/', '/', undefined],
      ['GET', '/', '/', 'unexpected body'],
      ['GET', '/version', '/version', undefined],
      ['GET', '/machine-config', '/machine-config', undefined],
      ['PUT', '/machine-config', '/machine-config', { vcpu_count: 2, mem_size_mib: 256 }],
      ['PUT', '/machine-config', '/machine-config', { vcpu_count: 0, mem_size_mib: 256 }],
      ['PATCH', '/machine-config', '/machine-config', { mem_size_mib: 128 }],
      ['PATCH', '/machine-config', '/machine-config', {}],
      ['PUT', '/boot-source', '/boot-source', { kernel_image_path: kernel, boot_args: 'console=ttyS0' }],
      ['PUT', '/boot-source', '/boot-source', { kernel_image_path: join(h.dir, 'missing') }],
      ['PUT', '/drives/{drive_id}', '/drives/root', { drive_id: 'root', path_on_host: disk, is_root_device: true }],
      ['PUT', '/drives/{drive_id}', '/drives/data', { drive_id: 'other', path_on_host: disk, is_root_device: false }],
      ['PATCH', '/drives/{drive_id}', '/drives/root', { drive_id: 'root', path_on_host: disk }],
      ['PUT', '/network-interfaces/{iface_id}', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0' }],
      ['PUT', '/network-interfaces/{iface_id}', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'a-name-far-too-long' }],
      ['PATCH', '/network-interfaces/{iface_id}', '/network-interfaces/eth0', { iface_id: 'eth0' }],
      ['PUT', '/vsock', '/vsock', { guest_cid: 3, uds_path: join(h.dir, 'v.sock') }],
      ['PUT', '/vsock', '/vsock', { guest_cid: 2, uds_path: join(h.dir, 'v.sock') }],
      ['PUT', '/entropy', '/entropy', {}],
      ['PUT', '/entropy', '/entropy', { rate_limiter: { ops: { size: -1, refill_time: 1 } } }],
      ['PUT', '/serial', '/serial', { serial_out_path: join(h.dir, 'serial.log') }],
      ['PUT', '/serial', '/serial', { serial_out_path: join(h.dir, 'no', 'serial.log') }],
      ['PUT', '/logger', '/logger', { log_path: join(h.dir, 'vmm.log'), level: 'debug', show_level: true }],
      ['PUT', '/logger', '/logger', { level: 'loud' }],
      ['PUT', '/metrics', '/metrics', { metrics_path: join(h.dir, 'metrics.json') }],
      ['PUT', '/metrics', '/metrics', { metrics_path: join(h.dir, 'metrics.json') }],
      ['PUT', '/actions', '/actions', { action_type: 'FlushMetrics' }],
      ['PUT', '/actions', '/actions', { action_type: 'Reboot' }],
      ['PATCH', '/vm', '/vm', { state: 'Paused' }],
      ['GET', '/vm/config', '/vm/config', undefined],
    ];
    const seen = new Set<string>();
    for (const [method, template, path, body] of calls) {
      const r = await h.call(method, path, body as string | object | undefined);
      assert.deepEqual(contract.checkResponse(method, template, r.status, r.body), [], `${method} ${path} → ${r.status} ${r.text}`);
      seen.add(`${method} ${template}`);
    }
    assert.deepEqual([...seen].sort(), contract.operations(), 'the run covers every operation');
    for (const [method, path] of [['GET', '/nowhere'], ['DELETE', '/vm'], ['POST', '/actions']] as const) {
      const r = await h.call(method, path);
      assert.equal(r.status, 400);
      assert.deepEqual(contract.validate({ $ref: '#/components/schemas/Error' }, r.body), [], `${method} ${path}`);
    }
  } finally {
    await h.close();
  }
});
