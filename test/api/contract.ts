/**
 * docs/api/openapi.yaml as a checker: which operations exist, and whether a
 * response (status and body) is one the document allows.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

export const OPENAPI_PATH = fileURLToPath(new URL('../../../docs/api/openapi.yaml', import.meta.url));

export interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, Operation | unknown>>;
  components: { schemas: Record<string, JsonSchema>; responses: Record<string, ResponseObject> };
}
export interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: string[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  additionalProperties?: boolean | JsonSchema;
  $ref?: string;
}
interface ResponseObject {
  $ref?: string;
  content?: Record<string, { schema: JsonSchema }>;
}
interface Operation {
  operationId: string;
  responses: Record<string, ResponseObject>;
  requestBody?: { content: Record<string, { schema: JsonSchema; example?: unknown }> };
}

export const METHODS = ['get', 'put', 'patch', 'post', 'delete', 'head', 'options', 'trace'];

export class Contract {
  readonly doc: OpenApiDoc;
  private readonly ajv: Ajv2020;

  constructor(path = OPENAPI_PATH) {
    this.doc = parse(readFileSync(path, 'utf8')) as OpenApiDoc;
    // OpenAPI 3.1 schemas are JSON Schema 2020-12; `example` and
    // `description` are annotations.
    this.ajv = new Ajv2020({ strict: true, allErrors: true, keywords: ['example'] });
    this.ajv.addSchema({ $id: 'components', $defs: this.rewrite(this.doc.components.schemas) });
  }

  /** Every documented operation as "METHOD /path/{template}". */
  operations(): string[] {
    const ops: string[] = [];
    for (const [path, item] of Object.entries(this.doc.paths)) {
      for (const m of Object.keys(item)) if (METHODS.includes(m)) ops.push(`${m.toUpperCase()} ${path}`);
    }
    return ops.sort();
  }

  operation(method: string, path: string): Operation {
    const op = this.doc.paths[path]?.[method.toLowerCase()] as Operation | undefined;
    if (!op) throw new Error(`${method} ${path} is not in the OpenAPI document`);
    return op;
  }

  private resolve(r: ResponseObject): ResponseObject {
    if (!r.$ref) return r;
    const name = r.$ref.replace('#/components/responses/', '');
    const found = this.doc.components.responses[name];
    if (!found) throw new Error(`dangling $ref ${r.$ref}`);
    return found;
  }

  /** Points the document's component references at the schemas registered with ajv. */
  private rewrite<T>(schema: T): T {
    return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', '"components#/$defs/')) as T;
  }

  /** Checks a schema reference against a value; returns the errors, empty when it conforms. */
  validate(schema: JsonSchema, value: unknown): string[] {
    const v = this.ajv.compile(this.rewrite(schema));
    if (v(value)) return [];
    return (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
  }

  /**
   * Checks one response against the operation: its status is documented
   * (or covered by `default` for 5xx) and its body has the documented shape.
   * Returns the problems found.
   */
  checkResponse(method: string, path: string, status: number, body: unknown): string[] {
    const op = this.operation(method, path);
    let r = op.responses[String(status)];
    if (!r && status >= 500) r = op.responses.default;
    if (!r) return [`${method} ${path}: status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`];
    const res = this.resolve(r);
    const schema = res.content?.['application/json']?.schema;
    if (!schema) return body === undefined ? [] : [`${method} ${path} ${status}: a body was sent but none is documented`];
    if (body === undefined) return [`${method} ${path} ${status}: no body, but one is documented`];
    return this.validate(schema, body).map((e) => `${method} ${path} ${status}: ${e}`);
  }
}
