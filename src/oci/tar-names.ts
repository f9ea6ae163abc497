// Tar entry names as bytes. Linux file names are bytes, not text: a layer may
// hold two files whose names differ only in bytes that are not UTF-8, and
// decoding them as UTF-8 (tar-stream's default) turns both into the same
// U+FFFD string, so one silently replaces the other. Names here are "byte
// strings": latin1-decoded, one character per byte, turned back into the same
// bytes with Buffer.from(name, 'latin1') for every file-system call.
//
// tar-stream decodes ustar and GNU long names with its `filenameEncoding`
// option, but PAX records (where Go's archive/tar, and so Docker and
// BuildKit, put every non-ASCII name) always as UTF-8. Its record decoding
// is therefore replaced on each extractor; construction fails loudly if the
// method it replaces is gone, so a tar-stream upgrade cannot undo this quietly.
import { extract, type Extract } from 'tar-stream';

type PaxRecords = Record<string, string>;

interface ExtractInternals {
  _header: { type: string | null } | null;
  _pax: PaxRecords | null;
  _paxGlobal: PaxRecords | null;
  _decodeLongHeader: (buf: Buffer) => void;
}

/** PAX extended header records ("<len> <key>=<value>\n"), values kept as byte strings. */
export function decodePaxRecords(buf: Buffer): PaxRecords {
  const out: PaxRecords = {};
  let rest = buf;
  while (rest.length > 0) {
    const space = rest.indexOf(0x20);
    const len = space > 0 ? Number(rest.subarray(0, space).toString('latin1')) : NaN;
    if (!Number.isSafeInteger(len) || len <= space + 1 || len > rest.length) break;
    const record = rest.subarray(space + 1, len - 1).toString('latin1');
    const eq = record.indexOf('=');
    if (eq === -1) break;
    out[record.slice(0, eq)] = record.slice(eq + 1);
    rest = rest.subarray(len);
  }
  return out;
}

/** A tar-stream extractor whose entry names and link targets are byte strings. */
export function byteNameExtract(options: { allowUnknownFormat?: boolean } = {}): Extract {
  const ex = extract({ ...options, filenameEncoding: 'latin1' } as Parameters<typeof extract>[0]);
  const internals = ex as unknown as ExtractInternals;
  const original = internals._decodeLongHeader;
  if (typeof original !== 'function' || !('_paxGlobal' in internals)) {
    throw new Error('tar-stream changed: cannot keep PAX names as bytes (see src/oci/tar-names.ts)');
  }
  internals._decodeLongHeader = function (this: ExtractInternals, buf: Buffer): void {
    const type = this._header?.type;
    if (type === 'pax-global-header') {
      this._paxGlobal = decodePaxRecords(buf);
    } else if (type === 'pax-header') {
      const own = decodePaxRecords(buf);
      this._pax = this._paxGlobal === null ? own : { ...this._paxGlobal, ...own };
    } else {
      original.call(this, buf);
    }
  };
  return ex;
}

/** Bytes of a byte-string name, for the file system. */
export function nameBytes(name: string): Buffer {
  return Buffer.from(name, 'latin1');
}

/** A byte-string name as text for messages (invalid UTF-8 shows as U+FFFD, in messages only). */
export function displayName(name: string): string {
  return nameBytes(name).toString('utf8');
}
