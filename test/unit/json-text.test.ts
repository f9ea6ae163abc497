// Parse errors of untrusted JSON name the position and never quote the text.
import { describe, expect, it } from 'vitest';
import { describeJsonSyntaxError, jsonErrorOffset, parseJsonText } from '../../src/json-text.js';

describe('JSON syntax errors', () => {
  it.each([
    ['root:x:0:0:secret', 0],
    ['{"a": 1, x}', 9],
    ['{"a": tru}', 6],
    ['{"a":"b\nc"}', 7],
    ['[1,2]x', 5],
    ['{"a":1}\n\n  secret', 11],
    ['{"a" 1}', 5],
    ['[1,,2]', 3],
    ['{"a":"\\q"}', 7],
    ['{"a":"\\u12G4"}', 7],
    ['[01]', 2],
    ['{"a":1,}', 7],
    ['[', 1],
    ['', 0],
  ])('finds the first bad character of %j at %i', (text, at) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(jsonErrorOffset(text)).toBe(at);
  });

  it('survives hostile nesting', () => {
    const deep = '['.repeat(200_000) + 'x';
    expect(jsonErrorOffset(deep)).toBe(200_000);
  });

  it('describes by line and column, or the end', () => {
    expect(describeJsonSyntaxError('{\n  "a": 1,\n  oops\n}')).toBe('invalid JSON at line 3, column 3');
    expect(describeJsonSyntaxError('{"a":')).toBe('invalid JSON: unexpected end of input');
    expect(describeJsonSyntaxError('  ')).toBe('invalid JSON: empty');
  });

  it('throws the caller\'s error, naming the file, without the content', () => {
    const secret = 'root:$y$j9T$abcdefSECRET:19000:0:99999:7:::';
    expect(() => parseJsonText(secret, '/x/index.json', (m) => new TypeError(m))).toThrow(new TypeError('/x/index.json: invalid JSON at line 1, column 1'));
    expect(parseJsonText('{"ok":true}', 'f', (m) => new Error(m))).toEqual({ ok: true });
  });
});
