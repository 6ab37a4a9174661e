// Rendering of captured bodies: pretty-printed JSON/XML, form data as pairs,
// plain text, and a hex dump for binary (the API sends non-UTF-8 as base64).

import type { Body, Json } from '../api/types';

export type RenderedBody =
  | { kind: 'json'; text: string }
  | { kind: 'xml'; text: string }
  | { kind: 'form'; pairs: [string, string][] }
  | { kind: 'text'; text: string }
  | { kind: 'hex'; text: string }
  | { kind: 'empty' };

/** The Content-Type of a message from its fields' `headers` pairs, lower-case, without parameters. */
export function contentType(fields: Json): string | null {
  if (!fields || typeof fields !== 'object' || Array.isArray(fields)) return null;
  const headers = fields.headers;
  if (!Array.isArray(headers)) return null;
  for (const h of headers) {
    if (Array.isArray(h) && typeof h[0] === 'string' && h[0].toLowerCase() === 'content-type' && typeof h[1] === 'string') {
      return h[1].split(';')[0].trim().toLowerCase();
    }
  }
  return null;
}

export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Classic 16-bytes-per-line dump: offset, hex in two groups of 8, ASCII. */
export function hexDump(bytes: Uint8Array, maxBytes = 64 * 1024): string {
  const n = Math.min(bytes.length, maxBytes);
  const lines: string[] = [];
  for (let off = 0; off < n; off += 16) {
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i === 8) hex += ' ';
      if (off + i < n) {
        const b = bytes[off + i];
        hex += b.toString(16).padStart(2, '0') + ' ';
        ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
      } else {
        hex += '   ';
      }
    }
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  if (bytes.length > n) lines.push(`… ${bytes.length - n} more bytes not shown`);
  return lines.join('\n');
}

/** Indents XML by nesting; leaves text content alone. Not a validator. */
export function prettyXml(xml: string): string {
  const parts = xml
    .replace(/>\s+</g, '><')
    .split(/(?=<)|(?<=>)/)
    .filter((p) => p.trim() !== '');
  let depth = 0;
  const out: string[] = [];
  for (const p of parts) {
    const isClose = /^<\//.test(p);
    const isSelf = /\/>$/.test(p) || /^<\?/.test(p) || /^<!/.test(p);
    const isOpen = /^<[^/!?]/.test(p) && !isSelf;
    if (isClose) depth = Math.max(0, depth - 1);
    out.push('  '.repeat(depth) + p.trim());
    if (isOpen) depth++;
  }
  // Put short text nodes back on their element's line: <a>text</a>.
  const joined: string[] = [];
  for (let i = 0; i < out.length; i++) {
    const openTag = /^<[^/!?]/.test(out[i].trim()) && !/\/>$/.test(out[i].trim());
    if (openTag && i + 2 < out.length && !out[i + 1].trim().startsWith('<') && out[i + 2].trim().startsWith('</')) {
      joined.push(out[i] + out[i + 1].trim() + out[i + 2].trim());
      i += 2;
    } else {
      joined.push(out[i]);
    }
  }
  return joined.join('\n');
}

export function parseForm(text: string): [string, string][] {
  const dec = (s: string) => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return text
    .split('&')
    .filter((p) => p !== '')
    .map((p) => {
      const i = p.indexOf('=');
      return i < 0 ? [dec(p), ''] : [dec(p.slice(0, i)), dec(p.slice(i + 1))];
    });
}

/** Picks a rendering from the content type, falling back to sniffing the text. */
export function renderBody(body: Body, type: string | null): RenderedBody {
  if (body.base64 != null) return { kind: 'hex', text: hexDump(base64ToBytes(body.base64)) };
  const text = body.text ?? '';
  if (text === '') return { kind: 'empty' };
  const t = type ?? '';
  const looksJson = /^\s*[{[]/.test(text);
  if (t.includes('json') || (!t && looksJson)) {
    try {
      return { kind: 'json', text: JSON.stringify(JSON.parse(text), null, 2) };
    } catch {
      // Truncated or invalid JSON: show it as it came.
      return { kind: 'text', text };
    }
  }
  if (t.includes('xml') || (!t && /^\s*<\?xml/.test(text))) return { kind: 'xml', text: prettyXml(text) };
  if (t === 'application/x-www-form-urlencoded') return { kind: 'form', pairs: parseForm(text) };
  return { kind: 'text', text };
}
