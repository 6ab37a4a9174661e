// A small CEL tokenizer for syntax highlighting and autocompletion. It never
// rejects input: anything it does not recognise becomes an `error` token so the
// highlighter still covers every character. Validation is the server's job
// (checkFilter); this only colours.

export type TokenKind =
  | 'ident'
  | 'keyword'
  | 'string'
  | 'number'
  | 'operator'
  | 'punct'
  | 'space'
  | 'error';

export interface Token {
  kind: TokenKind;
  text: string;
  start: number;
  end: number;
}

const KEYWORDS = new Set(['true', 'false', 'null', 'in']);

// Longest first so `<=` wins over `<`.
const OPERATORS = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '!', '+', '-', '*', '/', '%', '?', ':'];
const PUNCT = new Set(['(', ')', '[', ']', '{', '}', ',', '.']);

const isIdentStart = (c: string) => /[A-Za-z_]/.test(c);
const isIdentPart = (c: string) => /[A-Za-z0-9_]/.test(c);
const isDigit = (c: string) => c >= '0' && c <= '9';

/** Reads a quoted string starting at `i` (after optional r/b prefixes); returns its end. */
function readString(src: string, i: number): { end: number; closed: boolean } {
  let raw = false;
  while (src[i] === 'r' || src[i] === 'R' || src[i] === 'b' || src[i] === 'B') {
    if (src[i] === 'r' || src[i] === 'R') raw = true;
    i++;
  }
  const q = src[i];
  const triple = src.startsWith(q.repeat(3), i);
  const close = triple ? q.repeat(3) : q;
  i += close.length;
  while (i < src.length) {
    if (!raw && src[i] === '\\') {
      i += 2;
      continue;
    }
    if (src.startsWith(close, i)) return { end: i + close.length, closed: true };
    if (!triple && src[i] === '\n') break;
    i++;
  }
  return { end: Math.min(i, src.length), closed: false };
}

export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const push = (kind: TokenKind, end: number) => {
    out.push({ kind, text: src.slice(i, end), start: i, end });
    i = end;
  };
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      let j = i + 1;
      while (j < src.length && /\s/.test(src[j])) j++;
      push('space', j);
      continue;
    }
    // String literals, including r"..", b'..', '''..''' forms.
    const prefixed = /^[rRbB]{1,2}["']/.exec(src.slice(i, i + 3));
    if (c === '"' || c === "'" || prefixed) {
      const s = readString(src, i);
      push(s.closed ? 'string' : 'error', s.end);
      continue;
    }
    if (isDigit(c) || (c === '.' && isDigit(src[i + 1] ?? ''))) {
      const m = /^(0x[0-9a-fA-F]+u?|\d*\.?\d+(?:[eE][+-]?\d+)?u?)/.exec(src.slice(i));
      push('number', i + (m ? m[0].length : 1));
      continue;
    }
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < src.length && isIdentPart(src[j])) j++;
      push(KEYWORDS.has(src.slice(i, j)) ? 'keyword' : 'ident', j);
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op) {
      push('operator', i + op.length);
      continue;
    }
    if (PUNCT.has(c)) {
      push('punct', i + 1);
      continue;
    }
    push('error', i + 1);
  }
  return out;
}

/**
 * The dotted variable path being typed at `caret` (e.g. `src.na` → "src.na"),
 * with where it starts, for autocompletion. Empty when the caret is not in one.
 */
export function pathAt(src: string, caret: number): { prefix: string; start: number } {
  const toks = tokenize(src.slice(0, caret));
  let k = toks.length - 1;
  if (k < 0) return { prefix: '', start: caret };
  const last = toks[k];
  if (last.kind !== 'ident' && last.kind !== 'keyword' && !(last.kind === 'punct' && last.text === '.')) {
    return { prefix: '', start: caret };
  }
  let start = last.start;
  // Walk back over ident(.ident)* so `request.headers` completes as one name.
  while (k >= 0) {
    const t = toks[k];
    const isPart = t.kind === 'ident' || t.kind === 'keyword' || (t.kind === 'punct' && t.text === '.');
    if (!isPart) break;
    start = t.start;
    k--;
  }
  // A path that follows `)` or `]` is a method call on a value, not a variable.
  if (k >= 0 && toks[k].kind === 'punct' && (toks[k].text === ')' || toks[k].text === ']')) {
    return { prefix: '', start: caret };
  }
  return { prefix: src.slice(start, caret), start };
}
