import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const MODULE = resolve(__dirname, '..', '..', 'src', 'wasi-host', 'hard-exit.ts');

describe('hardExit', () => {
  it('ends the process at once with the code while a worker is blocked in a call', () => {
    // The worker blocks forever; process.exit() would wait for it and the
    // spawn would then be killed by its timeout (status null), hardExit must not.
    const script = `
      import { Worker } from 'node:worker_threads';
      import { hardExit } from ${JSON.stringify(MODULE)};
      const w = new Worker('Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)', { eval: true });
      w.on('online', () => setTimeout(() => hardExit(143), 100));
    `;
    const r = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15000 });
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.status).toBe(143);
  });

  it.each([0, 3, 255])('exits with %i', (code) => {
    const script = `import { hardExit } from ${JSON.stringify(MODULE)}; hardExit(${code});`;
    const r = spawnSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15000 });
    expect(r.status).toBe(code);
  });
});
