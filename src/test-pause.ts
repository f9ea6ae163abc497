// A hook for the fault tests (test/integration/faults.test.ts): when
// TUGBOAT_TEST_PAUSE_AT names a phase, the command stops itself (SIGSTOP) the
// first time it reaches that phase, with everything of the phase in place, so
// that a test can kill it there (SIGKILL, or SIGTERM then SIGCONT) exactly,
// without guessing at timings. Unset, it costs one comparison.
import { testPausePhase } from './defaults.js';

const phase = testPausePhase();
let paused = false;

export function testPause(at: string): void {
  if (phase !== at || paused) return;
  paused = true;
  process.kill(process.pid, 'SIGSTOP');
}
