import { describe, expect, it } from 'vitest';
import { appendTerm, celString, edgeFilter, equalsTerm, fieldTerm, listFieldTerm, mapFieldTerm, nodeFilter } from './term';

describe('CEL quoting', () => {
  it('escapes quotes, backslashes and control characters', () => {
    expect(celString('a"b\\c\nd\u0001')).toBe('"a\\"b\\\\c\\nd\\x01"');
  });
  it('keeps unicode as is', () => {
    expect(celString('café ✓')).toBe('"café ✓"');
  });
});

describe('terms', () => {
  it('builds equality for strings, numbers and booleans', () => {
    expect(equalsTerm('path', '/x')).toBe('path == "/x"');
    expect(equalsTerm('status_code', 404)).toBe('status_code == 404');
    expect(equalsTerm('redis_error', false)).toBe('redis_error == false');
  });
  it('refuses names that are not variable paths and non-scalar values', () => {
    expect(equalsTerm('a b', 'x')).toBeNull();
    expect(equalsTerm('path', ['x'])).toBeNull();
  });
  it('appends with && and parenthesises a top-level ||', () => {
    expect(appendTerm('', 'dns')).toBe('dns');
    expect(appendTerm('http', 'path == "/x"')).toBe('http && path == "/x"');
    expect(appendTerm('a || b', 'c')).toBe('(a || b) && c');
    expect(appendTerm('(a || b) && d', 'c')).toBe('(a || b) && d && c');
    expect(appendTerm('path == "x || y"', 'c')).toBe('path == "x || y" && c');
  });
  it('uses the short variable when the entry has it with the same value', () => {
    const vars = { method: 'GET', 'request.method': 'GET', status_code: 200 };
    expect(fieldTerm(vars, 'request', 'method', 'GET')).toBe('method == "GET"');
    expect(fieldTerm(vars, 'request', 'status_text', 'OK')).toBe('request.status_text == "OK"');
  });
  it('indexes maps with the key as the server stores it', () => {
    const vars = { 'request.headers': { 'content-type': 'text/html' } };
    expect(mapFieldTerm(vars, 'request', 'headers', 'Content-Type', 'text/html')).toBe('request.headers["content-type"] == "text/html"');
  });
  it('uses `in` for list elements', () => {
    expect(listFieldTerm({ dns_questions: ['a.test'] }, 'request', 'dns_questions', 'a.test')).toBe('"a.test" in dns_questions');
    expect(listFieldTerm({}, 'request', 'redis_args', 'k')).toBe('"k" in request.redis_args');
  });
  it('builds service map node and edge filters', () => {
    expect(nodeFilter('front"end')).toBe('src.name == "front\\"end" || dst.name == "front\\"end"');
    expect(edgeFilter('a', 'b', 'http')).toBe('http && src.name == "a" && dst.name == "b"');
    expect(nodeFilter('10.0.0.1', 'IP')).toBe('src.ip == "10.0.0.1" || dst.ip == "10.0.0.1"');
  });
});
