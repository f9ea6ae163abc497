import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..', '..');
// Inside the tree, so koffi-native.ts finds koffi's addon in node_modules above it.
const OUT = resolve(ROOT, 'build', 'test', 'thread-gate');

function drive(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [resolve(OUT, 'gate-driver.mjs'), ...args], { encoding: 'utf8', timeout: 90_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('thread gate: no thread is terminated inside a native load', () => {
  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true });
    await build({
      entryPoints: [resolve(__dirname, 'helpers', 'gate-driver.ts'), resolve(__dirname, 'helpers', 'gate-thread.ts')],
      outdir: OUT,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      platform: 'node',
      format: 'esm',
      external: ['koffi'],
      logLevel: 'silent',
    });
  });

  it('ends 150 threads at random moments of loading and declaring koffi without aborting the process', () => {
    // Plain Worker.terminate() at these moments aborted the process (SIGABRT, "napi_throw") within a few dozen threads.
    const r = drive('declare', '150');
    expect(r.stderr).toBe('');
    expect(r.status, r.stdout).toBe(0);
    const { ended, declared } = JSON.parse(r.stdout) as { ended: number; declared: number };
    expect(ended).toBe(150);
    // Some threads got as far as declaring, some did not: the moments spanned the load.
    expect(declared).toBeGreaterThan(0);
    expect(declared).toBeLessThan(150);
  }, 120_000);

  it('is adopted first by every thread entry our hosts start', () => {
    // A thread that does not adopt its gate has none: a terminate could land in its koffi load again.
    for (const entry of ['src/wasi-host/hosted-component-worker.ts', 'src/wasi-host/http/worker.ts', 'src/wasi-host/component-worker.ts']) {
      const source = readFileSync(resolve(ROOT, entry), 'utf8');
      expect(source, entry).toMatch(/^adoptThreadGate\(workerData\);$/m);
    }
    const starters = execFileSync('grep', ['-rln', 'startThread(', resolve(ROOT, 'src')], { encoding: 'utf8' }).trim().split('\n').map((f) => f.slice(ROOT.length + 1)).sort();
    expect(starters).toEqual(['src/thread-gate.ts', 'src/wasi-host/http/serve.ts', 'src/wasi-host/main.ts', 'src/wasi-host/shared/hosted-component.ts']);
  });

  it('waits for a section in progress to finish before it terminates the thread', () => {
    const r = drive('hold');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ endedWhileHeld: false, sectionFinished: true });
  }, 60_000);
});
