import { describe, expect, it } from 'vitest';
import { pathAt, tokenize } from './cel';

const kinds = (s: string) => tokenize(s).filter((t) => t.kind !== 'space').map((t) => [t.kind, t.text]);

describe('CEL tokenizer', () => {
  it('splits a typical filter into identifiers, operators, numbers and strings', () => {
    expect(kinds('http && status_code >= 500 && dst.name == "api"')).toEqual([
      ['ident', 'http'], ['operator', '&&'], ['ident', 'status_code'], ['operator', '>='], ['number', '500'],
      ['operator', '&&'], ['ident', 'dst'], ['punct', '.'], ['ident', 'name'], ['operator', '=='], ['string', '"api"'],
    ]);
  });

  it('covers every character so highlighting never loses text', () => {
    const src = 'request.headers["content-type"].startsWith(\'app\') || x in [1, 2.5e3] # ?';
    const toks = tokenize(src);
    expect(toks.map((t) => t.text).join('')).toBe(src);
    toks.forEach((t, i) => i > 0 && expect(t.start).toBe(toks[i - 1].end));
  });

  it('keeps escaped quotes inside a string', () => {
    expect(kinds('path == "a\\"b"')).toEqual([['ident', 'path'], ['operator', '=='], ['string', '"a\\"b"']]);
  });

  it('marks an unterminated string as an error token', () => {
    expect(kinds('method == "GET')[2]).toEqual(['error', '"GET']);
  });

  it('recognises keywords, raw strings and hex numbers', () => {
    expect(kinds('true in r"\\d" 0xff')).toEqual([['keyword', 'true'], ['keyword', 'in'], ['string', 'r"\\d"'], ['number', '0xff']]);
  });

  it('prefers two-character operators', () => {
    expect(kinds('a<=b!=c')).toEqual([['ident', 'a'], ['operator', '<='], ['ident', 'b'], ['operator', '!='], ['ident', 'c']]);
  });
});

describe('pathAt', () => {
  it('returns the dotted variable being typed', () => {
    expect(pathAt('http && src.na', 14)).toEqual({ prefix: 'src.na', start: 8 });
  });
  it('is empty after an operator', () => {
    expect(pathAt('http && ', 8).prefix).toBe('');
  });
  it('is empty for a method call on a value', () => {
    expect(pathAt('path.contains("x").siz', 22).prefix).toBe('');
  });
});
