// wasi:http/types `fields` (headers and trailers): names are compared
// without case and kept in lower case, values are bytes, held as latin1
// strings (one char per byte): Node reads and writes header values as
// latin1, so a value goes from a request to the guest, and from the guest to
// a response, without a Buffer on the way (abi.ts's 'latin1'). Fields a request
// brings are built only when the guest looks at them, straight from Node's
// rawHeaders, and are immutable, as are fields given to a response or a
// request (the spec's "immutable" header-error).
//
// Hop-by-hop headers belong to the connection, not to the guest: they are
// neither shown to it nor accepted from it ("forbidden"), as in wasmtime.

export type HeaderError = { tag: 'invalid-syntax' } | { tag: 'forbidden' } | { tag: 'immutable' };

export const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
]);

/** RFC 9110 tchar, by char code below 128. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;
const FORBIDDEN_LENGTHS = new Set([...FORBIDDEN_HEADERS].map((n) => n.length));

// A loop over the chars, not a RegExp: a guest names a few headers on every
// request, and a RegExp call costs more than the name's dozen chars.
function checkedName(name: string): string {
  let upper = false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) throw { tag: 'invalid-syntax' } satisfies HeaderError;
    if (c >= 65 && c <= 90) upper = true;
  }
  if (name.length === 0) throw { tag: 'invalid-syntax' } satisfies HeaderError;
  const lower = upper ? name.toLowerCase() : name;
  if (FORBIDDEN_LENGTHS.has(lower.length) && FORBIDDEN_HEADERS.has(lower)) throw { tag: 'forbidden' } satisfies HeaderError;
  return lower;
}

/** RFC 9110 field-value bytes: no controls but HTAB (Node refuses the same); one char per byte. */
function checkedValue(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) throw { tag: 'invalid-syntax' } satisfies HeaderError;
  }
  return value;
}

/** A name and its value as latin1. */
type Entry = [name: string, value: string];

export class Fields {
  #entries: Entry[] | undefined;
  /** Node's rawHeaders (name, value, name, value, …), turned into entries on first use. */
  #raw: readonly string[] | undefined;
  #immutable = false;

  static fromList(list: [string, string][]): Fields {
    const f = new Fields();
    f.#entries = list.map(([name, value]) => [checkedName(name), checkedValue(value)]);
    return f;
  }

  /** Immutable fields over Node's rawHeaders (a request's or a response's). */
  static fromRaw(raw: readonly string[]): Fields {
    const f = new Fields();
    f.#raw = raw;
    f.#immutable = true;
    return f;
  }

  /** Makes `f` immutable (it now belongs to a request or a response); returns it. */
  static lock(f: Fields): Fields {
    f.#immutable = true;
    return f;
  }

  #list(): Entry[] {
    if (this.#entries) return this.#entries;
    const out: Entry[] = [];
    const raw = this.#raw ?? [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      if (!FORBIDDEN_HEADERS.has(name)) out.push([name, raw[i + 1]!]);
    }
    return (this.#entries = out);
  }

  #mutable(): Entry[] {
    if (this.#immutable) throw { tag: 'immutable' } satisfies HeaderError;
    return this.#list();
  }

  get(name: string): string[] {
    const lower = name.toLowerCase();
    const out: string[] = [];
    const raw = this.#entries ? undefined : this.#raw;
    if (raw) {
      // Straight from Node's rawHeaders: no entries made.
      if (FORBIDDEN_HEADERS.has(lower)) return out;
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.length === lower.length && raw[i]!.toLowerCase() === lower) out.push(raw[i + 1]!);
      return out;
    }
    for (const [n, v] of this.#list()) if (n === lower) out.push(v);
    return out;
  }

  has(name: string): boolean {
    return this.get(name).length > 0;
  }

  set(name: string, values: string[]): void {
    const entries = this.#mutable();
    const lower = checkedName(name);
    values.forEach(checkedValue);
    this.#entries = entries.filter(([n]) => n !== lower);
    for (const v of values) this.#entries.push([lower, v]);
  }

  delete(name: string): void {
    const entries = this.#mutable();
    const lower = name.toLowerCase();
    this.#entries = entries.filter(([n]) => n !== lower);
  }

  append(name: string, value: string): void {
    const entries = this.#mutable();
    entries.push([checkedName(name), checkedValue(value)]);
  }

  entries(): Entry[] {
    return this.#list();
  }

  /** A mutable copy. */
  clone(): Fields {
    const f = new Fields();
    f.#entries = this.#list().slice();
    return f;
  }

  /** Node's header form: [name, value, name, value, …] (values as latin1, as Node writes them). */
  toRaw(): string[] {
    const out: string[] = [];
    for (const [n, v] of this.#list()) out.push(n, v);
    return out;
  }

  /** One value per name (trailers, which Node takes as an object); repeated names are joined with ", ". */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [n, v] of this.#list()) out[n] = n in out ? `${out[n]}, ${v}` : v;
    return out;
  }

  [Symbol.dispose](): void {}
}
