// Our resource drops in place of jco's trampolines (src/wasi-host/http/drops.ts).
import { describe, expect, it } from 'vitest';
import { FLAG, handleRep, tableCreateOwn, tableRemove, type HandleTable, type TableRoles } from '../../src/wasi-host/http/abi.js';
import { fastDrop, InstanceDrops } from '../../src/wasi-host/http/drops.js';
import { Reps } from '../../src/wasi-host/http/reps.js';

const newTable = (): HandleTable => [0, 0];

describe('resource drops of our own resources', () => {
  it('removes an owned handle of ours as jco would and disposes its resource, without jco', () => {
    const reps = new Reps();
    const [ours, theirs] = [newTable(), newTable()];
    const disposed: number[] = [];
    const slow: number[] = [];
    const drop = fastDrop({ table: ours }, (rep) => disposed.push(rep), (h) => slow.push(h));
    const reps3 = [reps.add({}, 'fields'), reps.add({}, 'fields'), reps.add({}, 'fields')];
    const hs = reps3.map((r) => tableCreateOwn(ours, r));
    reps3.forEach((r) => tableCreateOwn(theirs, r));
    drop(hs[1]!);
    tableRemove(theirs, hs[1]!);
    expect(disposed).toEqual([reps3[1]]);
    expect(slow).toEqual([]);
    // The table is left exactly as jco's own removal leaves it (the free list included).
    expect([...ours]).toEqual([...theirs]);
    expect(handleRep(ours, hs[1]!)).toBeUndefined();
    // The freed slot is the next one handed out.
    expect(tableCreateOwn(ours, reps.add({}, 'fields'))).toBe(hs[1]);
  });

  it("leaves borrows, jco's and preview2-shim's reps, lent handles and unknown handles to jco", () => {
    const reps = new Reps();
    const t = newTable();
    const slow: number[] = [];
    const disposed: number[] = [];
    const drop = fastDrop({ table: t }, (rep) => disposed.push(rep), (h) => slow.push(h));
    const foreign = tableCreateOwn(t, 7);
    const lent = tableCreateOwn(t, reps.add({}, 'fields'));
    t[lent << 1] = 3;
    t.push(0, reps.add({}, 'fields'));
    const borrow = (t.length >> 1) - 1;
    for (const h of [foreign, lent, borrow, 0, 99]) drop(h);
    expect(slow).toEqual([foreign, lent, borrow, 0, 99]);
    expect(disposed).toEqual([]);
    expect(t[(foreign << 1) + 1]).toBe(7 | FLAG);
  });

  it("replaces the drops of our interfaces in a copy of the imports; each finds its table when the instance is made, else stays jco's", () => {
    const reps = new Reps();
    const known = newTable();
    const roles = { tableFor: (res: string) => (res === 'fields' ? known : undefined) } as unknown as TableRoles;
    const calls: string[] = [];
    const jcoDrop = (name: string) => (h: number) => calls.push(`jco ${name} ${h}`);
    const other = () => undefined;
    const [fieldsDrop, bodyDrop] = [jcoDrop('fields'), jcoDrop('incoming-body')];
    const imports = {
      'wasi:http/types@0.2.6': { '[resource-drop]fields': fieldsDrop, '[resource-drop]incoming-body': bodyDrop, '[method]fields.get': other },
      'wasi:cli/stdout@0.2.6': { '[resource-drop]x': jcoDrop('x') },
      $root: { f: other },
    };
    const drops = new InstanceDrops((rep) => calls.push(`ours ${rep}`));
    const out = drops.adjust(imports)!;
    const http = out['wasi:http/types@0.2.6'] as Record<string, (h: number) => void>;
    expect(http['[method]fields.get']).toBe(other);
    expect(out['wasi:cli/stdout@0.2.6']).toBe(imports['wasi:cli/stdout@0.2.6']);
    expect(imports['wasi:http/types@0.2.6']['[resource-drop]fields']).toBe(fieldsDrop);
    const h = tableCreateOwn(known, reps.add({}, 'fields'));
    // Before the instance is made, jco's drop does it.
    http['[resource-drop]fields']!(h);
    drops.resolve(roles);
    const rep2 = reps.add({}, 'fields');
    http['[resource-drop]fields']!(tableCreateOwn(known, rep2));
    http['[resource-drop]incoming-body']!(5);
    expect(calls).toEqual([`jco fields ${h}`, `ours ${rep2}`, 'jco incoming-body 5']);
    expect(drops.adjust({ $root: { f: other } })).toEqual({ $root: { f: other } });
  });
});
