// JSON from files Tugboat does not trust. V8's parse errors quote the text
// they choke on ("Unexpected token 'r', "root:$y$j9T"... is not valid JSON"),
// and such a file may be a link to /etc/shadow; so a failure is reported by
// file and position only, found by the small scanner below.

/** Parses `text`; on failure throws `makeError("<what>: invalid JSON at line L, column C")`. */
export function parseJsonText(text: string, what: string, makeError: (message: string) => Error): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw makeError(`${what}: ${describeJsonSyntaxError(text)}`);
  }
}

/** "invalid JSON at line L, column C" (1-based), for text JSON.parse refused. Never quotes the text. */
export function describeJsonSyntaxError(text: string): string {
  const at = jsonErrorOffset(text);
  if (at >= text.length) return text.trim() === '' ? 'invalid JSON: empty' : 'invalid JSON: unexpected end of input';
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `invalid JSON at line ${line}, column ${at - lineStart + 1}`;
}

class SyntaxAt {
  constructor(readonly offset: number) {}
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);

function stringEnd(s: string, start: number): number {
  for (let j = start + 1; ; j++) {
    if (j >= s.length) throw new SyntaxAt(j);
    const c = s.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c < 0x20) throw new SyntaxAt(j);
    if (c === 0x5c) {
      const e = s[j + 1];
      if (e === 'u') {
        if (!/^[0-9a-fA-F]{4}$/.test(s.slice(j + 2, j + 6))) throw new SyntaxAt(j + 1);
        j += 5;
      } else if (e !== undefined && ESCAPES.has(e)) {
        j++;
      } else {
        throw new SyntaxAt(j + 1);
      }
    }
  }
}

function scalarEnd(s: string, i: number): number {
  if (s[i] === '"') return stringEnd(s, i);
  for (const word of ['true', 'false', 'null']) if (s.startsWith(word, i)) return i + word.length;
  NUMBER.lastIndex = i;
  if (NUMBER.test(s)) return NUMBER.lastIndex;
  throw new SyntaxAt(i);
}

/**
 * Offset of the first character that makes `s` invalid JSON (s.length when
 * it ends too early). Iterative, so hostile nesting cannot overflow the stack.
 */
export function jsonErrorOffset(s: string): number {
  const closers: string[] = [];
  let i = 0;
  let state: 'value' | 'valueOrClose' | 'key' | 'keyOrClose' | 'after' = 'value';
  try {
    for (;;) {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
      if (i >= s.length) return s.length;
      const c = s[i]!;
      if ((state === 'valueOrClose' && c === ']') || (state === 'keyOrClose' && c === '}')) {
        closers.pop();
        i++;
        state = 'after';
      } else if (state === 'value' || state === 'valueOrClose') {
        if (c === '{' || c === '[') {
          closers.push(c === '{' ? '}' : ']');
          state = c === '{' ? 'keyOrClose' : 'valueOrClose';
          i++;
        } else {
          i = scalarEnd(s, i);
          state = 'after';
        }
      } else if (state === 'key' || state === 'keyOrClose') {
        if (c !== '"') return i;
        i = stringEnd(s, i);
        while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
        if (i >= s.length) return s.length;
        if (s[i] !== ':') return i;
        i++;
        state = 'value';
      } else {
        if (closers.length === 0) return i; // text after the value
        if (c === ',') {
          state = closers.at(-1) === '}' ? 'key' : 'value';
          i++;
        } else if (c === closers.at(-1)) {
          closers.pop();
          i++;
        } else {
          return i;
        }
      }
    }
  } catch (err) {
    if (err instanceof SyntaxAt) return err.offset;
    throw err;
  }
}
