// wasi:http/types `fields` (headers and trailers): names are compared
// without case and kept in lower case, values are bytes. Fields a request
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

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** RFC 9110 field-value bytes: no controls but HTAB (Node refuses the same). */
function validValue(value: Uint8Array): boolean {
  for (const b of value) if ((b < 0x20 && b !== 0x09) || b === 0x7f) return false;
  return true;
}

function checkedName(name: string): string {
  if (!TOKEN.test(name)) throw { tag: 'invalid-syntax' } satisfies HeaderError;
  const lower = name.toLowerCase();
  if (FORBIDDEN_HEADERS.has(lower)) throw { tag: 'forbidden' } satisfies HeaderError;
  return lower;
}

function checkedValue(value: Uint8Array): Uint8Array {
  if (!validValue(value)) throw { tag: 'invalid-syntax' } satisfies HeaderError;
  return value;
}

type Entry = [name: string, value: Uint8Array];

export class Fields {
  #entries: Entry[] | undefined;
  /** Node's rawHeaders (name, value, name, value, …), turned into entries on first use. */
  #raw: readonly string[] | undefined;
  #immutable = false;

  static fromList(list: [string, Uint8Array][]): Fields {
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
      if (!FORBIDDEN_HEADERS.has(name)) out.push([name, Buffer.from(raw[i + 1]!, 'latin1')]);
    }
    return (this.#entries = out);
  }

  #mutable(): Entry[] {
    if (this.#immutable) throw { tag: 'immutable' } satisfies HeaderError;
    return this.#list();
  }

  get(name: string): Uint8Array[] {
    const lower = name.toLowerCase();
    const out: Uint8Array[] = [];
    const raw = this.#entries ? undefined : this.#raw;
    if (raw) {
      // Straight from Node's rawHeaders: only what is asked for is encoded.
      if (FORBIDDEN_HEADERS.has(lower)) return out;
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.length === lower.length && raw[i]!.toLowerCase() === lower) out.push(Buffer.from(raw[i + 1]!, 'latin1'));
      return out;
    }
    for (const [n, v] of this.#list()) if (n === lower) out.push(v);
    return out;
  }

  has(name: string): boolean {
    return this.get(name).length > 0;
  }

  set(name: string, values: Uint8Array[]): void {
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

  append(name: string, value: Uint8Array): void {
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
    for (const [n, v] of this.#list()) out.push(n, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1'));
    return out;
  }

  /** One value per name (trailers, which Node takes as an object); repeated names are joined with ", ". */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [n, v] of this.#list()) {
      const s = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1');
      out[n] = n in out ? `${out[n]}, ${s}` : s;
    }
    return out;
  }

  [Symbol.dispose](): void {}
}
