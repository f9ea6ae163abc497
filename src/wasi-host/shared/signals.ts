// What a signal does to a guest of a shared host, which has no signal
// handlers: what the default action of that signal does to a process.

const SIGCHLD = 17;
const SIGCONT = 18;
const SIGSTOP = 19;
const SIGTSTP = 20;
const SIGTTIN = 21;
const SIGTTOU = 22;
const SIGURG = 23;
const SIGWINCH = 28;

/**
 * Signals whose default action is to ignore or to stop/continue leave a guest
 * running (signal 0 only checks that it exists); every other one ends it
 * with 128+N, SIGKILL included.
 */
export function signalEndsGuest(signal: number): boolean {
  return ![0, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGWINCH].includes(signal);
}
