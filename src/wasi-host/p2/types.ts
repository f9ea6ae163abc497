// wasi:filesystem/types 0.2 as jco's glue passes them to the host and
// expects them back: enums as their WIT names, flags as objects of
// camelCase booleans, records as objects, u64 as bigint, option as
// undefined, result errors as a thrown error-code string.

export type ErrorCode =
  | 'access' | 'would-block' | 'already' | 'bad-descriptor' | 'busy' | 'deadlock' | 'quota' | 'exist'
  | 'file-too-large' | 'illegal-byte-sequence' | 'in-progress' | 'interrupted' | 'invalid' | 'io'
  | 'is-directory' | 'loop' | 'too-many-links' | 'message-size' | 'name-too-long' | 'no-device' | 'no-entry'
  | 'no-lock' | 'insufficient-memory' | 'insufficient-space' | 'not-directory' | 'not-empty'
  | 'not-recoverable' | 'unsupported' | 'no-tty' | 'no-such-device' | 'overflow' | 'not-permitted' | 'pipe'
  | 'read-only' | 'invalid-seek' | 'text-file-busy' | 'cross-device';

export type DescriptorType =
  | 'unknown' | 'block-device' | 'character-device' | 'directory' | 'fifo' | 'symbolic-link' | 'regular-file' | 'socket';

export interface DescriptorFlags {
  read?: boolean;
  write?: boolean;
  fileIntegritySync?: boolean;
  dataIntegritySync?: boolean;
  requestedWriteSync?: boolean;
  mutateDirectory?: boolean;
}

export interface PathFlags {
  symlinkFollow?: boolean;
}

export interface OpenFlags {
  create?: boolean;
  directory?: boolean;
  exclusive?: boolean;
  truncate?: boolean;
}

/** wasi:clocks/wall-clock datetime. */
export interface Datetime {
  seconds: bigint;
  nanoseconds: number;
}

export type NewTimestamp = { tag: 'no-change' } | { tag: 'now' } | { tag: 'timestamp'; val: Datetime };

export interface DescriptorStat {
  type: DescriptorType;
  linkCount: bigint;
  size: bigint;
  dataAccessTimestamp: Datetime | undefined;
  dataModificationTimestamp: Datetime | undefined;
  statusChangeTimestamp: Datetime | undefined;
}

export interface MetadataHashValue {
  lower: bigint;
  upper: bigint;
}

export interface DirectoryEntry {
  type: DescriptorType;
  name: string;
}

export type Advice = 'normal' | 'sequential' | 'random' | 'will-need' | 'dont-need' | 'no-reuse';
