// Core module or component? Both share the magic `\0asm`; the next four bytes
// are `version(2) layer(2)`. A core module's version 01 00 00 00 reads as
// layer 0; components use layer 1 with a version that is still changing
// (0x0d today), so only the layer is checked.

export function wasmKind(header: Uint8Array): 'module' | 'component' | null {
  if (header.length < 8) return null;
  if (header[0] !== 0x00 || header[1] !== 0x61 || header[2] !== 0x73 || header[3] !== 0x6d) return null;
  const layer = (header[6] ?? 0) | ((header[7] ?? 0) << 8);
  if (layer === 0) return (header[4] ?? 0) === 1 && (header[5] ?? 0) === 0 ? 'module' : null;
  return layer === 1 ? 'component' : null;
}
