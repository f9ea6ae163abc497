// Errors in the form runc's callers read them. containerd takes the last line
// with "level":"error" from `--log <file> --log-format json` as the message of
// a failed create ("OCI runtime create failed: <msg>"), and a line that is not
// JSON breaks that decoder, so every line here is runc-shaped JSON.
import { appendFileSync } from 'node:fs';
import { flagValue, type ParsedFlag } from './argv.js';

export interface RuntimeLog {
  error(msg: string): void;
  warn(msg: string): void;
}

function line(level: string, msg: string, format: string): string {
  const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  if (format === 'json') return JSON.stringify({ level, msg, time }) + '\n';
  return `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
}

export function runtimeLog(globals: readonly ParsedFlag[]): RuntimeLog {
  const file = flagValue(globals, 'log');
  const format = flagValue(globals, 'log-format') ?? 'text';
  const write = (level: string, msg: string) => {
    if (file) {
      try {
        appendFileSync(file, line(level, msg, format));
      } catch {
        // the log is best effort; stderr below still carries the message
      }
    }
    if (level === 'error') process.stderr.write(`tugboat: ${msg}\n`);
  };
  return { error: (m) => write('error', m), warn: (m) => write('warning', m) };
}
