// Exports a core module's mutable state, so that a host can copy it when an
// instance is made and copy it back later: the instance is then as it was
// made (an HTTP handler between requests) without making a new one. A
// module's own state is its memories, globals, tables and segments; the host
// can reach the first two through exports and nothing else, so the pass also
// says when code may change the others, or when a copy would not hold still.
// Imported memories and globals belong to whoever made them (the host, or
// another instance that exports its own): they get no export here.
import { nameBytes, u32Bytes } from './bytes.js';
import { decodeModule, EXTERN, SEC, type DecodedModule } from './decode.js';
import { encodeModule } from './encode.js';
import { STATE_OPS } from './instructions.js';
import { STATE_EXPORT_PREFIX } from './names.js';
import { addEntries } from './section-edits.js';
import { SIZE, SiteList } from './sites.js';
import { isShared } from './types.js';

export { STATE_EXPORT_PREFIX };

export interface StateReport {
  /** Why an instance of the module cannot be put back as it was made (a short reason); undefined when it can. */
  unresettable?: string;
  /** The memory exports added: `tugboat:state:memory:<i>`, i its index in the memory index space (imports first). */
  memories: string[];
  /** The global exports added: `tugboat:state:global:<i>`, i its index in the global index space (imports first). */
  globals: string[];
}

export interface StateResult {
  bytes: Uint8Array;
  report: StateReport;
}

// Value types whose values JavaScript can neither read nor write (WebAssembly.Global's value throws).
const V128 = 0x7b;
const EXNREF = 0x69;

/** The memories the module defines, by index in the memory index space. */
function definedMemories(m: DecodedModule): number[] {
  const imported = (m.imports?.entries ?? []).filter((e) => e.kind === EXTERN.memory).length;
  return m.memories.map((_, i) => imported + i);
}

/** The mutable globals the module defines, by index in the global index space. */
function mutableGlobals(m: DecodedModule): number[] {
  const out: number[] = [];
  const types = m.globals?.types ?? [];
  for (let i = 0; i < types.length; i++) if (types[i]!.mutable) out.push(m.importedGlobals + i);
  return out;
}

/** Why a copy of the exported memories and globals cannot put an instance back, or undefined. */
function unresettable(m: DecodedModule): string | undefined {
  const reasons: string[] = [];
  // A guest that exports one of our names could hand the host a memory or
  // global of its choosing to restore in place of its real state.
  const taken = [...(m.exports?.names ?? [])].find((n) => n.startsWith(STATE_EXPORT_PREFIX));
  if (taken !== undefined) reasons.push(`it exports ${JSON.stringify(taken)} itself (a name reserved for state exports)`);

  // Another thread may write a shared memory while it is copied back.
  const importedShared = (m.imports?.entries ?? []).some((e) => e.kind === EXTERN.memory && isShared(e.limits!));
  if (importedShared || m.memories.some(isShared)) reasons.push('it has a shared memory (threads)');

  const opaque = m.globals?.types.findIndex((t) => t.mutable && (t.valType === V128 || t.valType === EXNREF)) ?? -1;
  if (opaque >= 0) reasons.push(`global ${m.importedGlobals + opaque} is a mutable ${m.globals!.types[opaque]!.valType === V128 ? 'v128' : 'exnref'}, which JavaScript cannot read`);

  // Tables and segments have no export a host could copy them through.
  const found = STATE_OPS.filter((op) => (m.scan.stateOps & op.bit) !== 0);
  for (const effect of new Set(found.map((op) => op.effect))) {
    const names = found.filter((op) => op.effect === effect).map((op) => op.name);
    reasons.push(`it ${effect} at run time (${names.join(', ')})`);
  }
  return reasons.length > 0 ? reasons.join('; ') : undefined;
}

/**
 * The sections' size prefixes alone. No index moves and no code changes, so
 * nothing inside a section changes but the export section's count and end:
 * encoding with these sites is one copy, where the code's many sites would
 * cost as much again as decoding.
 */
function sectionSites(m: DecodedModule): SiteList {
  const sites = new SiteList(m.sections.length + 1);
  for (const s of m.sections) sites.add(SIZE, s.start + 1, s.payloadStart - s.start - 1, s.end - s.payloadStart);
  return sites;
}

function exportEntry(name: string, kind: number, index: number): number[] {
  return [...nameBytes(name), kind, ...u32Bytes(index)];
}

/**
 * Adds an export of every memory the module defines and of every mutable
 * global it defines (names in StateReport), and says whether that is enough
 * to put an instance back as it was made: not when its code changes a table
 * or drops a segment, a memory is shared, a mutable global holds a type
 * JavaScript cannot read, or the module already uses our export names. Then
 * `bytes` is the input itself, unchanged, and the report lists no exports;
 * likewise when there is nothing to export. No index moves and the code
 * section is copied as it is. Pure: bytes in, bytes out; a malformed or
 * unsupported module ends in a WasmDecodeError or WasmUnsupportedError.
 */
export function exportState(bytes: Uint8Array): StateResult {
  const m = decodeModule(bytes, { code: true });
  const why = unresettable(m);
  if (why !== undefined) return { bytes, report: { unresettable: why, memories: [], globals: [] } };

  const memories = definedMemories(m).map((i) => ({ name: `${STATE_EXPORT_PREFIX}memory:${i}`, index: i }));
  const globals = mutableGlobals(m).map((i) => ({ name: `${STATE_EXPORT_PREFIX}global:${i}`, index: i }));
  const report: StateReport = { memories: memories.map((e) => e.name), globals: globals.map((e) => e.name) };
  if (memories.length + globals.length === 0) return { bytes, report };

  const entries = [...memories.map((e) => exportEntry(e.name, EXTERN.memory, e.index)), ...globals.map((e) => exportEntry(e.name, EXTERN.global, e.index))];
  const edits = addEntries(m, SEC.export, m.exports?.count, entries);
  const out = encodeModule({ ...m, sites: sectionSites(m) }, edits, { funcShiftFrom: Infinity, code: undefined });
  return { bytes: out, report };
}
