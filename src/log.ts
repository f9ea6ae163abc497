// One pino logger for the whole process. JSON lines on stderr, quiet by
// default (warn) so that `tugboat run` output is the container's own; raise
// with --log-level or TUGBOAT_LOG_LEVEL=debug.
import { pino, type Logger } from 'pino';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LEVELS as readonly string[]).includes(s);
}

let current: Logger = pino(
  { name: 'tugboat', level: envLevel(), base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: true }),
);

function envLevel(): LogLevel {
  const v = process.env.TUGBOAT_LOG_LEVEL;
  return v && isLogLevel(v) ? v : 'warn';
}

export function log(): Logger {
  return current;
}

export function setLogLevel(level: LogLevel): void {
  current.level = level;
}

/** Send logs to a file instead of stderr (runc-style --log). */
export function setLogFile(path: string): void {
  current = pino({ name: 'tugboat', level: current.level, base: { pid: process.pid } }, pino.destination({ dest: path, sync: true, append: true, mkdir: true }));
}
