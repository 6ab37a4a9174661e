// "Copy as cURL" for an HTTP entry, from its request fields and body.

import type { Entry, Json } from '../api/types';

/** POSIX shell single-quoting: safe for any byte sequence except NUL. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function field(fields: Json, name: string): Json | undefined {
  return fields && typeof fields === 'object' && !Array.isArray(fields) ? fields[name] : undefined;
}

// curl computes these itself; copying them makes the command wrong after edits.
const SKIP_HEADERS = new Set(['content-length', 'host', 'transfer-encoding', 'connection']);

/** Null when the entry is not HTTP or has no request. */
export function toCurl(e: Entry, requestBody: string | null = null): string | null {
  if (e.flag !== 'http' || !e.request) return null;
  const f = e.request.fields;
  const method = String(field(f, 'method') ?? 'GET');
  const target = String(field(f, 'url') ?? field(f, 'path') ?? '/');
  const headers = field(f, 'headers');
  let host = typeof field(f, 'host') === 'string' ? String(field(f, 'host')) : '';
  const pairs: [string, string][] = [];
  if (Array.isArray(headers)) {
    for (const h of headers) {
      if (Array.isArray(h) && h.length === 2) {
        const [k, v] = [String(h[0]), String(h[1])];
        if (k.toLowerCase() === 'host' && !host) host = v;
        if (!SKIP_HEADERS.has(k.toLowerCase())) pairs.push([k, v]);
      }
    }
  }
  if (!host) host = e.dst.ip.includes(':') ? `[${e.dst.ip}]:${e.dst.port}` : `${e.dst.ip}:${e.dst.port}`;
  const url = /^https?:\/\//.test(target) ? target : `http://${host}${target.startsWith('/') ? '' : '/'}${target}`;
  const parts = ['curl'];
  if (method !== 'GET' || requestBody) parts.push('-X', shellQuote(method));
  parts.push(shellQuote(url));
  for (const [k, v] of pairs) parts.push('-H', shellQuote(`${k}: ${v}`));
  if (requestBody) parts.push('--data-binary', shellQuote(requestBody));
  return parts.join(' ');
}
