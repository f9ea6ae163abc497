// One pino logger for the whole process: JSON lines on stderr (or a file),
// quiet by default (warn) so that `tugboat run` output is the container's own;
// raise with --log-level or TUGBOAT_LOG_LEVEL=debug.
//
// pino is loaded on the first record that passes the level: most commands
// never log, and loading it costs more than a third of the CLI's start-up.
import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { envLogLevel } from './defaults.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];
const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

export function isLogLevel(s: string): s is LogLevel {
  return (LEVELS as readonly string[]).includes(s);
}

type Method = (obj: object | string, msg?: string) => void;
export interface Log {
  trace: Method;
  debug: Method;
  info: Method;
  warn: Method;
  error: Method;
  fatal: Method;
}

const require = createRequire(import.meta.url);
let level: LogLevel = envLevel();
let file: string | undefined;
let lossyFd: number | undefined;
let pinoLogger: Logger | undefined;

function envLevel(): LogLevel {
  const v = envLogLevel();
  return v && isLogLevel(v) ? v : 'warn';
}

function logger(): Logger {
  if (!pinoLogger) {
    const { pino } = require('pino') as typeof import('pino');
    const dest = lossyFd !== undefined ? lossyDestination(lossyFd) : file ? pino.destination({ dest: file, sync: true, append: true, mkdir: true }) : pino.destination({ fd: 2, sync: true });
    pinoLogger = pino({ name: 'tugboat', level, base: { pid: process.pid } }, dest);
  }
  return pinoLogger;
}

function method(name: Exclude<LogLevel, 'silent'>): Method {
  return (obj, msg) => {
    if (RANK[name] < RANK[level]) return;
    if (typeof obj === 'string') logger()[name](obj);
    else logger()[name](obj, msg);
  };
}

const facade: Log = {
  trace: method('trace'),
  debug: method('debug'),
  info: method('info'),
  warn: method('warn'),
  error: method('error'),
  fatal: method('fatal'),
};

export function log(): Log {
  return facade;
}

export function setLogLevel(l: LogLevel): void {
  level = l;
  if (pinoLogger) pinoLogger.level = l;
}

/** Send logs to a file instead of stderr (runc-style --log). */
export function setLogFile(path: string): void {
  file = path;
  lossyFd = undefined;
  pinoLogger = undefined;
}

/**
 * Send logs to an open non-blocking fd (a FIFO someone may stop reading):
 * a record that does not fit is dropped instead of blocking the process.
 * The caller keeps the fd open while it is in use.
 */
export function setLogFdLossy(fd: number): void {
  lossyFd = fd;
  file = undefined;
  pinoLogger = undefined;
}

function lossyDestination(fd: number): { write(s: string): void } {
  return {
    write(s: string) {
      const buf = Buffer.from(s);
      try {
        // A pipe takes a record of up to PIPE_BUF bytes whole or not at all (EAGAIN).
        for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
      } catch {
        // EAGAIN (full), EPIPE (no reader), EBADF: the record is lost
      }
    },
  };
}
