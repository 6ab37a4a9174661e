import { describe, expect, it } from 'vitest';
import { contentType, hexDump, prettyXml, renderBody } from './body';
import { toCurl, shellQuote } from './curl';
import type { Body, Entry } from '../api/types';

const body = (p: Partial<Body>): Body => ({ size: 0, captured: 0, truncated: false, decodedFrom: null, text: null, base64: null, ...p });

describe('bodies', () => {
  it('finds the content type among header pairs', () => {
    expect(contentType({ headers: [['Host', 'x'], ['Content-Type', 'Application/JSON; charset=utf-8']] })).toBe('application/json');
    expect(contentType({})).toBeNull();
  });
  it('pretty-prints JSON and falls back to text when truncated', () => {
    expect(renderBody(body({ text: '{"a":[1,2]}' }), 'application/json')).toEqual({ kind: 'json', text: '{\n  "a": [\n    1,\n    2\n  ]\n}' });
    expect(renderBody(body({ text: '{"a":[1,' }), 'application/json').kind).toBe('text');
  });
  it('parses form data', () => {
    expect(renderBody(body({ text: 'a=1&b=x+y%21' }), 'application/x-www-form-urlencoded')).toEqual({ kind: 'form', pairs: [['a', '1'], ['b', 'x y!']] });
  });
  it('indents XML and keeps short text on one line', () => {
    expect(prettyXml('<a><b>hi</b><c/></a>')).toBe('<a>\n  <b>hi</b>\n  <c/>\n</a>');
  });
  it('hex-dumps base64 bodies', () => {
    const r = renderBody(body({ base64: btoa('\x00\x01AB') }), null);
    // 16 columns of "xx " plus the gap after 8: 49 characters wide.
    expect(r).toEqual({ kind: 'hex', text: `00000000  ${'00 01 41 42 '.padEnd(49)} |..AB|` });
  });
  it('splits hex lines at 16 bytes', () => {
    const lines = hexDump(new Uint8Array(20)).split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1].startsWith('00000010  00 00 00 00')).toBe(true);
  });
});

describe('cURL', () => {
  const entry = {
    flag: 'http',
    dst: { ip: '127.0.0.1', port: 8080, name: '127.0.0.1' },
    request: { fields: { method: 'POST', url: "/api?q=it's", headers: [['Host', 'example.test'], ['Content-Type', 'application/json'], ['Content-Length', '2']] } },
  } as unknown as Entry;
  it('quotes for the shell', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
  it('builds a command with method, URL from Host, headers and body', () => {
    expect(toCurl(entry, '{}')).toBe(
      `curl -X 'POST' 'http://example.test/api?q=it'\\''s' -H 'Content-Type: application/json' --data-binary '{}'`,
    );
  });
  it('is null for other protocols', () => {
    expect(toCurl({ ...entry, flag: 'dns' } as Entry)).toBeNull();
  });
});
