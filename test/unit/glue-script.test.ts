// jco's glue as a classic script with V8's code cache (linux-runtime/glue-script.ts),
// and the host's loader of it (wasi-host/shared/component-glue.ts): real jco
// output of the hand-written HTTP component, the cache taken by a host started
// as a container's is (the kit's flags), and every glue jco makes that this
// does not know left to be imported as the module.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPONENT_ENTRY, ensureTranspiled, type CachedComponent } from '../../src/linux-runtime/component-cache.js';
import { glueAsScript, writeGlueScript } from '../../src/linux-runtime/glue-script.js';
import { GLUE_CODE_CACHE, GLUE_SCRIPT, lastGlueLoad, loadGlue, loadGlueFile } from '../../src/wasi-host/shared/component-glue.js';
import { openComponent } from '../../src/wasi-host/shared/hosted-component.js';
import type { HostContext } from '../../src/wasi-host/shared/hosted-guest.js';
import { ModuleCache } from '../../src/wasi-host/shared/module-cache.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODE = join(REPO, 'vendor', 'node', 'bin', 'node');

describe('glue script and code cache', () => {
  let dir: string;
  let entry: CachedComponent;
  let glue: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tugboat-glue-'));
    entry = await ensureTranspiled(join(REPO, 'examples', 'components', 'out', 'http-bench.wasm'), join(dir, 'cache'));
    glue = readFileSync(join(entry.dir, COMPONENT_ENTRY), 'utf8');
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is written read-only beside the glue by the transpile, and the meta says so', () => {
    expect(entry.meta.glueScript).toBe(true);
    for (const name of [GLUE_SCRIPT, GLUE_CODE_CACHE]) expect(statSync(join(entry.dir, name)).mode & 0o777).toBe(0o444);
    expect(readFileSync(join(entry.dir, GLUE_SCRIPT), 'utf8')).toBe(glueAsScript(glue));
  });

  it("loads as the same instantiate the module exports, with the cache V8 takes", async () => {
    const instantiate = await loadGlueFile(entry.dir, COMPONENT_ENTRY);
    expect(lastGlueLoad()).toBe('script+cache');
    expect(typeof instantiate).toBe('function');
    expect(instantiate.name).toBe('instantiate');
    const mod = (await import(pathToFileURL(join(entry.dir, COMPONENT_ENTRY)).href)) as { instantiate: (...a: unknown[]) => unknown };
    expect(instantiate.length).toBe(mod.instantiate.length);
  });

  it("is taken by a host started with the kit's flags (the cache was made in this process)", () => {
    const probe = `import { loadGlueFile, lastGlueLoad } from ${JSON.stringify(pathToFileURL(join(REPO, 'dist', 'wasi-host', 'shared', 'component-glue.js')).href)};
await loadGlueFile(${JSON.stringify(entry.dir)}, ${JSON.stringify(COMPONENT_ENTRY)});
process.stdout.write(lastGlueLoad());`;
    const out = execFileSync(NODE, ['--no-warnings', '--disable-sigusr1', '--input-type=module', '-e', probe], { encoding: 'utf8' });
    expect(out).toBe('script+cache');
  });

  it('falls back to the module when the entry has no script, and compiles a script whose cache V8 refuses', async () => {
    const bare = join(dir, 'bare');
    execFileSync('cp', ['-r', entry.dir, bare]);
    rmSync(join(bare, GLUE_CODE_CACHE), { force: true });
    const viaModule = await loadGlueFile(bare, COMPONENT_ENTRY);
    expect(lastGlueLoad()).toBe('module');
    expect(typeof viaModule).toBe('function');
    // A cache of another text: V8 refuses it, the script is compiled as it is.
    const other = join(dir, 'other');
    execFileSync('cp', ['-r', entry.dir, other]);
    execFileSync('chmod', ['-R', 'u+w', other]);
    expect(await writeGlueScript(other, glue.replace('export function instantiate(', 'export function instantiate(/* another text */'))).toBeUndefined();
    writeFileSync(join(other, GLUE_SCRIPT), readFileSync(join(entry.dir, GLUE_SCRIPT)));
    const refused = await loadGlueFile(other, COMPONENT_ENTRY);
    expect(lastGlueLoad()).toBe('script, cache rejected');
    expect(typeof refused).toBe('function');
  });

  it('leaves a glue it does not know the shape of to the module, saying why', () => {
    expect(glueAsScript(glue.replace('export function instantiate(', 'export async function instantiate('))).toEqual({ why: 'instantiate is not one exported function followed by _util' });
    expect(glueAsScript(`import x from 'y';\n${glue}`)).toEqual({ why: 'the glue has other import or export statements' });
    expect(glueAsScript(`${glue}\nexport const more = 1;\n`)).toEqual({ why: 'the glue has other import or export statements' });
    expect(glueAsScript(glue.replace('_util = {', '_util = { meta: import.meta,'))).toEqual({ why: 'the glue uses import.meta beyond its core modules URL' });
  });

  it('runs none of the glue to make the cache', async () => {
    const marker = join(dir, 'ran');
    // A top-level statement and one in instantiate: the script is compiled, neither runs.
    const write = `process.getBuiltinModule('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x');`;
    const noisy = `${write}\n${glue.replace(/(export function instantiate\([^)]*\) \{)/, `$1 ${write}`)}`;
    expect(noisy.split(write).length).toBe(3);
    const out = join(dir, 'noisy');
    execFileSync('mkdir', [out]);
    expect(await writeGlueScript(out, noisy)).toBeUndefined();
    expect(() => statSync(marker)).toThrow();
  });

  it("reaches a shared host's guest through the entry's descriptor (openComponent), and an older entry without it imports the module", async () => {
    const ctx = { modules: new ModuleCache(), scheduler: undefined } as unknown as HostContext;
    const open = async (at: string) => {
      const componentFd = openSync(at, constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        return await openComponent({ args: ['/c.wasm'], env: [], rootFd: -1, cwd: '/', preopens: [], stdio: [-1, -1, -1], componentFd, entry: COMPONENT_ENTRY, world: 'http' }, ctx);
      } finally {
        closeSync(componentFd);
      }
    };
    const withScript = await open(entry.dir);
    try {
      expect(withScript.code.glue).toEqual({ script: readFileSync(join(entry.dir, GLUE_SCRIPT), 'utf8'), cache: readFileSync(join(entry.dir, GLUE_CODE_CACHE)) });
      await loadGlue(withScript.code.glue);
      expect(lastGlueLoad()).toBe('script+cache');
    } finally {
      withScript.release();
    }
    const older = join(dir, 'older');
    execFileSync('cp', ['-r', entry.dir, older]);
    rmSync(join(older, GLUE_SCRIPT), { force: true });
    const without = await open(older);
    try {
      expect(without.code.glue).toEqual({ module: readFileSync(join(older, COMPONENT_ENTRY), 'utf8') });
      await loadGlue(without.code.glue);
      expect(lastGlueLoad()).toBe('module');
    } finally {
      without.release();
    }
  });
});
