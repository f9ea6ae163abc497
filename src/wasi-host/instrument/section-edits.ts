// Edits that add entries to a module's vector sections (types, imports,
// globals, exports), shared by the passes that add them.
import { u32Bytes } from './bytes.js';
import { SEC, sectionRank, type Count, type DecodedModule } from './decode.js';
import { APPEND, INSERT, REPLACE, type Edit } from './sites.js';

/** Replaces a vector's count. */
function recount(count: Count, value: number): Edit {
  return { kind: REPLACE, pos: count.pos, len: count.width, data: u32Bytes(value, count.width) };
}

/** A whole new section, inserted where its id belongs in the section order. */
function newSection(m: DecodedModule, id: number, n: number, entries: number[]): Edit {
  const payload = [...u32Bytes(n), ...entries];
  const rank = sectionRank(id);
  const before = m.sections.find((s) => s.id !== SEC.custom && sectionRank(s.id) > rank);
  const data = new Uint8Array([id, ...u32Bytes(payload.length), ...payload]);
  return { kind: INSERT, pos: before?.start ?? m.bytes.length, len: 0, data };
}

/** Adds entries to a vector section: appended with a new count, or as a new section. */
export function addEntries(m: DecodedModule, id: number, count: Count | undefined, entries: number[][]): Edit[] {
  if (entries.length === 0) return [];
  const section = m.sections.find((s) => s.id === id);
  if (!section || !count) return [newSection(m, id, entries.length, entries.flat())];
  return [recount(count, count.value + entries.length), { kind: APPEND, pos: section.end, len: 0, data: new Uint8Array(entries.flat()) }];
}

export function addEntry(m: DecodedModule, id: number, count: Count | undefined, entry: number[]): Edit[] {
  return addEntries(m, id, count, [entry]);
}
