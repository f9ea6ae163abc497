// Custom sections of a Wasm component: the names found at its top level and
// in its top-level core modules. Only section headers are read (one pass,
// bounds-checked): a hostile file yields no names, never an exception.
//
// The one a host looks for: REUSE_SECTION, a component's declaration that
// an instance may serve many HTTP requests one after another (README, "Wasm
// components and wasi:http"). A component author adds it to the component
// or to the core module that holds the handler (Rust:
// `#[link_section = "io.tugboat.http.reuse"] static REUSE: [u8; 0] = [];`,
// WAT: `(@custom "io.tugboat.http.reuse" "")`).

export const REUSE_SECTION = 'io.tugboat.http.reuse';

const HEADER = 8;
const CORE_MODULE = 1;

function leb(bytes: Uint8Array, at: number): [value: number, next: number] | undefined {
  let value = 0;
  let shift = 0;
  for (let i = at; i < bytes.length && shift < 35; i++, shift += 7) {
    const b = bytes[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, i + 1];
  }
  return undefined;
}

/** Names of the custom sections in bytes[start, end) (a module's or component's section list). */
function namesIn(bytes: Uint8Array, start: number, end: number, depth: number, out: Set<string>): void {
  let at = start + HEADER;
  while (at < end) {
    const id = bytes[at]!;
    const size = leb(bytes, at + 1);
    if (!size) return;
    const [len, body] = size;
    if (body + len > end) return;
    if (id === 0) {
      const name = leb(bytes, body);
      if (name && name[1] + name[0] <= body + len) out.add(Buffer.from(bytes.buffer, bytes.byteOffset + name[1], name[0]).toString('utf8'));
    } else if (id === CORE_MODULE && depth === 0) {
      namesIn(bytes, body, body + len, 1, out);
    }
    at = body + len;
  }
}

export function customSectionNames(bytes: Uint8Array): Set<string> {
  const out = new Set<string>();
  if (bytes.length >= HEADER) namesIn(bytes, 0, bytes.length, 0, out);
  return out;
}

/** Does the component declare that an instance may serve many requests? */
export function declaresReuse(bytes: Uint8Array): boolean {
  return customSectionNames(bytes).has(REUSE_SECTION);
}
