/**
 * Who may use the console: whoever holds the token. It is random (32 bytes,
 * hex) unless the admin sets one, printed at start, and required on every
 * HTTP request and WebSocket upgrade, as `Authorization: Bearer <token>` or
 * as the cookie the login form sets.
 *
 * Browser-side defences, because the console drives processes on this host:
 * - the cookie is HttpOnly and SameSite=Strict, and state-changing requests
 *   must be JSON (a cross-site form cannot send that without a CORS
 *   preflight, which is never granted) from this origin;
 * - WebSocket upgrades must come from this origin (browsers send cookies on
 *   cross-site WebSocket handshakes; Origin is the only guard);
 * - while the server listens on loopback only, a Host header that does not
 *   name a loopback address is refused (DNS rebinding).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';

export const TOKEN_COOKIE = 'typevisor_token';
/** Generated tokens: 32 random bytes. */
export const TOKEN_BYTES = 32;
/** An admin-chosen token shorter than this is refused: it could be guessed. */
export const MIN_TOKEN_LENGTH = 16;

export class TokenError extends Error {
  override name = 'TokenError';
}

export function generateToken(): string {
  return randomBytes(TOKEN_BYTES).toString('hex');
}

/** Checks an admin-chosen token; throws a TokenError saying what is wrong. */
export function validateToken(token: string): string {
  if (token.length < MIN_TOKEN_LENGTH) throw new TokenError(`the token must be at least ${MIN_TOKEN_LENGTH} characters long (got ${token.length})`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new TokenError('the token must be printable ASCII without spaces (it travels in a header and a cookie)');
  if (/[;,"\\]/.test(token)) throw new TokenError('the token must not contain ; , " or \\ (it travels in a cookie)');
  return token;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time comparison (of digests, so lengths leak nothing either). */
export function tokenMatches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  return timingSafeEqual(digest(expected), digest(given));
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

/** The token a request carries: the Authorization header first, then the cookie. */
export function requestToken(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m ? m[1] : undefined;
  }
  return parseCookies(req.headers.cookie).get(TOKEN_COOKIE);
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (net.isIPv4(a)) return a.startsWith('127.');
  return a === '::1';
}

/** True for names and addresses that can only mean this host: localhost, 127/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || isLoopbackAddress(h);
}

/** The host part of a Host header ("127.0.0.1:8080", "[::1]:80", "localhost"). */
export function hostOfHeader(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(header.trim());
  return m ? m[1] : undefined;
}

export function sessionCookie(token: string): string {
  return `${TOKEN_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}

export const CLEAR_COOKIE = `${TOKEN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
