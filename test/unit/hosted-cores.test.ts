// Cores (src/wasi-host/shared/cores.ts): the core instances of one component
// guest on one of its threads, under the control array every thread of the
// guest shares. Two Cores over one array stand for two handler threads of an
// HTTP guest: the memory they report is the sum, a grow is refused once the
// sum would pass the limit, and an instance let go stops counting. (Pause
// at the yield points: test/integration/http-serve.test.ts, dense-shim.test.ts.)
import { describe, expect, it } from 'vitest';
import { instrument } from '../../src/wasi-host/instrument/index.js';
import { CTL } from '../../src/wasi-host/shared/component-protocol.js';
import { Cores } from '../../src/wasi-host/shared/cores.js';
import { wat } from './helpers/wasm.js';

const GUEST = '(module (memory (export "memory") 2) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))';

async function guestModule(): Promise<WebAssembly.Module> {
  return new WebAssembly.Module(instrument(await wat(GUEST), { growHook: true }).bytes);
}

type Grow = (pages: number) => number;
const growOf = (instance: WebAssembly.Instance) => instance.exports.grow as Grow;

describe('Cores', () => {
  it('sums the memory of every thread and instance of a guest, and lets an instance go', async () => {
    const module = await guestModule();
    const ctl = new Int32Array(new SharedArrayBuffer(CTL.LENGTH * 4));
    const [a, b] = [new Cores(ctl), new Cores(ctl)];
    const first = a.track(() => a.instantiate(module));
    const second = b.track(() => b.instantiate(module));
    expect(Atomics.load(ctl, CTL.PAGES)).toBe(4);
    expect(growOf(first.value)(3)).toBe(2);
    expect(Atomics.load(ctl, CTL.PAGES)).toBe(7);
    first.release();
    expect(Atomics.load(ctl, CTL.PAGES)).toBe(2);
    second.release();
    expect(Atomics.load(ctl, CTL.PAGES)).toBe(0);
  });

  it('refuses a grow that would pass the limit summed over the threads, and says so', async () => {
    const module = await guestModule();
    const ctl = new Int32Array(new SharedArrayBuffer(CTL.LENGTH * 4));
    Atomics.store(ctl, CTL.LIMIT_PAGES, 8);
    const [a, b] = [new Cores(ctl), new Cores(ctl)];
    const ga = growOf(a.instantiate(module));
    const gb = growOf(b.instantiate(module));
    expect(ga(3)).toBe(2); // 5 + 2 = 7 pages
    expect(gb(2)).toBe(-1); // 9 > 8
    expect(b.growRefused).toBe(true);
    expect(a.growRefused).toBe(false);
    expect(gb(1)).toBe(2); // exactly 8
    expect(Atomics.load(ctl, CTL.PAGES)).toBe(8);
  });

  it('a failed instantiation counts nothing', async () => {
    const module = await guestModule();
    const ctl = new Int32Array(new SharedArrayBuffer(CTL.LENGTH * 4));
    const cores = new Cores(ctl);
    expect(() =>
      cores.track(() => {
        cores.instantiate(module);
        throw new Error('the glue failed');
      }),
    ).toThrow('the glue failed');
    expect(Atomics.load(ctl, CTL.PAGES)).toBe(0);
  });
});
