// The host side of components, in process (no runc): exit mapping, the
// direct stdio streams, and a real transpiled component run with our shim.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from '@bytecodealliance/jco';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPONENT_ENTRY, ensureTranspiled } from '../../src/linux-runtime/component-cache.js';
import { ComponentExit, componentExit, componentOutcome, trapMessage } from '../../src/wasi-host/component-outcome.js';
import { runCommandInstance } from '../../src/wasi-host/component-run.js';
import { componentShim, fdOutputStream, lazyStdin, loadComponent } from '../../src/wasi-host/component-shim.js';
import * as p2 from '../../src/wasi-host/p2/shim.js';
import type { GuestConfig } from '../../src/wasi-host/guest-config.js';

describe('component stdin', () => {
  it('is made only when first used, and forwards to the real stream', () => {
    let made = 0;
    const real = { blockingRead: (n: bigint) => new Uint8Array(Number(n)).fill(7) };
    const stdin = lazyStdin(() => {
      made++;
      return real as never;
    });
    expect(stdin).toBeInstanceOf(p2.io.streams.InputStream);
    expect(made).toBe(0);
    expect((stdin as unknown as typeof real).blockingRead(3n)).toEqual(new Uint8Array([7, 7, 7]));
    (stdin as unknown as typeof real).blockingRead(1n);
    expect(made).toBe(1);
  });
});

describe('component outcome → exit status', () => {
  const thrown = (f: () => unknown): unknown => {
    try {
      f();
    } catch (e) {
      return e;
    }
    throw new Error('did not throw');
  };
  it('maps wasi:cli/exit exactly', () => {
    expect(componentOutcome(thrown(() => componentExit.exit({ tag: 'ok' })), false)).toEqual({ kind: 'exit', code: 0 });
    expect(componentOutcome(thrown(() => componentExit.exit({ tag: 'err' })), false)).toEqual({ kind: 'exit', code: 1 });
    expect(componentOutcome(thrown(() => componentExit.exitWithCode(42)), false)).toEqual({ kind: 'exit', code: 42 });
  });
  it('maps a normal return to 0 and result::err (jco ComponentError) to 1', () => {
    expect(componentOutcome(undefined, true)).toEqual({ kind: 'exit', code: 0 });
    const err = Object.defineProperty(new Error('x'), 'payload', { value: undefined });
    expect(componentOutcome(err, false)).toEqual({ kind: 'exit', code: 1 });
  });
  it('reports traps with their message, without jco\'s own prefix', () => {
    const trap = new WebAssembly.RuntimeError('wasm trap: wasm `unreachable` instruction executed');
    expect(componentOutcome(trap, false)).toEqual({ kind: 'trap', message: 'wasm `unreachable` instruction executed' });
    expect(componentOutcome(new RangeError('Maximum call stack size exceeded'), false).kind).toBe('trap');
    expect(trapMessage(new Error('unreachable'))).toBe('unreachable');
  });
  it('anything else is a host error', () => {
    expect(componentOutcome(new TypeError('boom'), false)).toEqual({ kind: 'error', message: 'boom' });
    expect(componentOutcome('weird', false)).toEqual({ kind: 'error', message: 'weird' });
    expect(new ComponentExit(3).code).toBe(3);
  });
});

describe('component host', () => {
  let dir: string;
  let entryDir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-ch-'));
    const wat = readFileSync(join(import.meta.dirname, '..', '..', 'examples', 'components', 'exit-with-code.wat'), 'utf8');
    writeFileSync(join(dir, 'c.wasm'), await parse(wat));
    entryDir = (await ensureTranspiled(join(dir, 'c.wasm'), join(dir, 'cache'))).dir;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes stdout synchronously to a descriptor, and a broken one is a closed stream', () => {
    const file = join(dir, 'out.txt');
    const fd = openSync(file, 'w');
    const s = fdOutputStream(fd) as unknown as { blockingWriteAndFlush(b: Uint8Array): void; checkWrite(): bigint };
    s.blockingWriteAndFlush(new TextEncoder().encode('hi\n'));
    expect(s.checkWrite()).toBeGreaterThan(0n);
    expect(readFileSync(file, 'utf8')).toBe('hi\n');
    closeSync(fd);
    expect(() => s.blockingWriteAndFlush(new Uint8Array([1]))).toThrow(expect.objectContaining({ tag: 'closed' }));
  });

  it('runs a transpiled component with its own args; exit-with-code ends it with the code', async () => {
    const config: GuestConfig = { args: ['/c.wasm', 'a', 'b'], env: [], component: { dir: entryDir, entry: COMPONENT_ENTRY, world: 'command' } };
    const outcome = await runCommandInstance(await loadComponent(config, componentShim(config).getImportObject()));
    // 39 + number of arguments including argv[0].
    expect(outcome).toEqual({ kind: 'exit', code: 42 });
  });
});
