// Building filter terms from values the user clicks, so the result always
// parses: strings are CEL-quoted, names that are not plain paths use map_get.

import type { Json } from '../api/types';

/** A CEL double-quoted string literal for `s`. */
export function celString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === '"') out += '\\"';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

/** A CEL literal for a scalar JSON value, or null when it has no literal (objects, arrays). */
export function celLiteral(v: Json): string | null {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : null;
  if (typeof v === 'string') return celString(v);
  return null;
}

const PLAIN_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** `variable == literal`; `variable` must be a filter variable name. */
export function equalsTerm(variable: string, value: Json): string | null {
  const lit = celLiteral(value);
  if (lit === null || !PLAIN_PATH.test(variable)) return null;
  return `${variable} == ${lit}`;
}

/** `map["key"] == "value"` for a header-like map variable (keys as the server stores them). */
export function mapEntryTerm(mapVariable: string, key: string, value: Json): string | null {
  const lit = celLiteral(value);
  if (lit === null || !PLAIN_PATH.test(mapVariable)) return null;
  return `${mapVariable}[${celString(key)}] == ${lit}`;
}

/** `"value" in listVariable`. */
export function inListTerm(listVariable: string, value: Json): string | null {
  const lit = celLiteral(value);
  if (lit === null || !PLAIN_PATH.test(listVariable)) return null;
  return `${lit} in ${listVariable}`;
}

/**
 * Appends `term` with `&&`. A filter containing `||` at the top level is
 * parenthesised first so the new term narrows the whole of it.
 */
export function appendTerm(filter: string, term: string): string {
  const f = filter.trim();
  if (f === '') return term;
  return hasTopLevelOr(f) ? `(${f}) && ${term}` : `${f} && ${term}`;
}

function hasTopLevelOr(f: string): boolean {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < f.length; i++) {
    const c = f[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (depth === 0 && (f.startsWith('||', i) || c === '?')) return true;
  }
  return false;
}

/** Filter matching traffic to or from a named endpoint (service map node click). */
export function nodeFilter(name: string, groupBy: 'NAME' | 'IP' | 'NAMESPACE' = 'NAME'): string {
  const field = groupBy === 'IP' ? 'ip' : groupBy === 'NAMESPACE' ? 'pod.namespace' : 'name';
  const q = celString(name);
  return `src.${field} == ${q} || dst.${field} == ${q}`;
}

/** Filter matching the calls of one service-map edge. */
export function edgeFilter(source: string, target: string, flag: string | null, groupBy: 'NAME' | 'IP' | 'NAMESPACE' = 'NAME'): string {
  const field = groupBy === 'IP' ? 'ip' : groupBy === 'NAMESPACE' ? 'pod.namespace' : 'name';
  const pair = `src.${field} == ${celString(source)} && dst.${field} == ${celString(target)}`;
  return flag && PLAIN_PATH.test(flag) ? `${flag} && ${pair}` : pair;
}

type Vars = Record<string, Json>;

function sameScalar(a: Json | undefined, b: Json): boolean {
  return a !== undefined && a !== null && typeof a !== 'object' && a === b;
}

/**
 * The term for a clicked field of a request/response message. Prefers the short
 * top-level variable (`method`) when the entry's vars say it holds this value,
 * else the always-present `request.<name>` / `response.<name>` form.
 */
export function fieldTerm(vars: Vars, side: 'request' | 'response', field: string, value: Json): string | null {
  const qualified = `${side}.${field}`;
  const variable = sameScalar(vars[field], value) ? field : qualified;
  return equalsTerm(variable, value);
}

/** The term for one [name, value] pair of a map field (headers). */
export function mapFieldTerm(vars: Vars, side: 'request' | 'response', field: string, key: string, value: Json): string | null {
  const qualified = `${side}.${field}`;
  const m = vars[qualified];
  // The server lower-cases header names in vars; use whatever key it holds.
  let k = key;
  if (m && typeof m === 'object' && !Array.isArray(m)) {
    const found = Object.keys(m).find((x) => x.toLowerCase() === key.toLowerCase());
    if (found !== undefined) k = found;
  }
  return mapEntryTerm(qualified, k, value);
}

/** The term for one element of a list field (dns_questions). */
export function listFieldTerm(vars: Vars, side: 'request' | 'response', field: string, value: Json): string | null {
  const variable = Array.isArray(vars[field]) ? field : `${side}.${field}`;
  return inListTerm(variable, value);
}
