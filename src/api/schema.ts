/**
 * Request bodies are checked against small declarative specs, one per
 * Firecracker model. A spec is data so the contract test can compare it,
 * field by field, with docs/api/openapi.yaml: the two cannot drift apart
 * without a test failing.
 *
 * Every refusal names the field, what was expected and what came, because an
 * orchestrator's operator reads these messages in a log far from the request.
 */
import { ApiError } from './errors.js';

export type Spec = StringSpec | BooleanSpec | IntegerSpec | AnyObjectSpec | MapSpec;

export interface StringSpec {
  type: 'string';
  enum?: readonly string[];
  /** Enum values compare case-insensitively (Firecracker's logger level does). */
  caseInsensitive?: boolean;
  minLength?: number;
  maxLength?: number;
  /** A JSON Schema `pattern` (ECMAScript syntax, also what the OpenAPI document holds). */
  pattern?: string;
  /** What the pattern means, for the message. */
  patternText?: string;
}

export interface BooleanSpec {
  type: 'boolean';
}

export interface IntegerSpec {
  type: 'integer';
  minimum?: number;
  maximum?: number;
}

/** A JSON object with known fields only. */
export interface AnyObjectSpec {
  type: 'object';
  /** The model's name in the OpenAPI document (components/schemas). */
  name: string;
  properties: Readonly<Record<string, Spec>>;
  required: readonly string[];
}

/** An object spec that lists every field of T, checked by the compiler. */
export type ObjectSpec<T extends object> = AnyObjectSpec & {
  properties: { [K in keyof T]-?: Spec };
  required: readonly (keyof T & string)[];
};

/** A JSON object with free keys and values of one spec (Firecracker's metrics `properties`). */
export interface MapSpec {
  type: 'map';
  values: StringSpec;
}

/** The largest integer a JSON number carries exactly here (2^53 - 1). */
export const MAX_JSON_INTEGER = Number.MAX_SAFE_INTEGER;

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
    case 'number':
      return Number.isInteger(v) ? `integer ${v}` : `number ${v}`;
    case 'boolean':
      return `boolean ${v}`;
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

function fail(where: string, message: string): never {
  throw ApiError.badRequest(where ? `${where}: ${message}` : message);
}

function check(value: unknown, spec: Spec, where: string): unknown {
  switch (spec.type) {
    case 'string': {
      if (typeof value !== 'string') fail(where, `expected a string, got ${describeValue(value)}`);
      if (spec.enum) {
        const found = spec.enum.find((e) => (spec.caseInsensitive ? e.toLowerCase() === value.toLowerCase() : e === value));
        if (found === undefined) fail(where, `expected one of ${spec.enum.join(', ')}, got ${describeValue(value)}`);
        return found;
      }
      if (spec.minLength !== undefined && value.length < spec.minLength) {
        fail(where, spec.minLength === 1 ? 'must not be empty' : `must be at least ${spec.minLength} characters long`);
      }
      if (spec.maxLength !== undefined && value.length > spec.maxLength) {
        fail(where, `must be at most ${spec.maxLength} characters long, got ${value.length}`);
      }
      if (spec.pattern !== undefined && !new RegExp(spec.pattern, 'u').test(value)) {
        fail(where, `${describeValue(value)} is not ${spec.patternText ?? `of the form ${spec.pattern}`}`);
      }
      return value;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail(where, `expected true or false, got ${describeValue(value)}`);
      return value;
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) fail(where, `expected an integer, got ${describeValue(value)}`);
      const max = Math.min(spec.maximum ?? MAX_JSON_INTEGER, MAX_JSON_INTEGER);
      if (spec.minimum !== undefined && value < spec.minimum) fail(where, `must be at least ${spec.minimum}, got ${value}`);
      if (value > max) fail(where, `must be at most ${max}, got ${value}`);
      return value;
    }
    case 'map': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, `expected an object, got ${describeValue(value)}`);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = check(v, spec.values, where ? `${where}.${k}` : k);
      return out;
    }
    case 'object':
      return checkObject(value, spec, where);
  }
}

function checkObject(value: unknown, spec: AnyObjectSpec, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(where, `expected a JSON object (${spec.name}), got ${describeValue(value)}`);
  }
  const props = spec.properties;
  const known = Object.keys(props);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const p = props[k];
    const at = where ? `${where}.${k}` : k;
    if (!p) fail(where, `unknown field "${k}" (${spec.name} has ${known.join(', ')})`);
    // JSON null reads as "not given", as serde reads null into an Option.
    if (v === null) {
      if (spec.required.includes(k)) fail(at, `is required and cannot be null`);
      continue;
    }
    out[k] = check(v, p, at);
  }
  for (const r of spec.required) {
    if (!(r in out)) fail(where, `missing required field "${r}"`);
  }
  return out;
}

/**
 * Checks a parsed JSON value against a model; returns a fresh object holding
 * only the fields the spec names. Throws an ApiError (400) naming the problem.
 */
export function parseModel<T extends object>(value: unknown, spec: ObjectSpec<T>, where = ''): T {
  return checkObject(value, spec, where) as T;
}

/** Parses a request body's text as JSON; refuses empty and malformed bodies. */
export function parseJson(text: string): unknown {
  if (text.trim() === '') throw ApiError.badRequest('the request body is empty; a JSON object is expected');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw ApiError.badRequest(`malformed JSON in the request body: ${(e as Error).message}`);
  }
}
