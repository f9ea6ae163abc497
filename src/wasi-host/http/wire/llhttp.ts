// Node's own HTTP/1.1 parser (llhttp, the one node:http's server uses),
// reached through `_http_common` without node:http's message objects: the
// request's bytes are parsed by the same C code, in the same strict mode
// (no lenient flags: a request whose framing is ambiguous, such as both
// Content-Length and Transfer-Encoding, is refused), with the same limits
// (--max-http-header-size, 16 KiB by default). What node:http builds around
// it per request (IncomingMessage, ServerResponse, their streams and
// events) is most of its cost: measured on this VM with a fixed answer, the
// parser alone serves 1.75× the requests a second of node:http at half its
// CPU a request (see server.ts).
//
// `_http_common` is undocumented but has kept this shape since Node 12; the
// checks below fail a thread's start, not a request, if it ever changes.

/** The binding's parser (node_http_parser.cc), as far as a server uses it. */
export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  /** Reads straight from the socket's handle in C++: no Buffer per read reaches JS. */
  consume(handle: unknown): void;
  unconsume(): void;
  execute(data: Buffer): number | LlhttpError;
  remove(): void;
  free(): void;
  /** Deletes the C++ parser now (node:http's closeParserInstance). */
  close(): void;
  [slot: number]: unknown;
}

/** A parse error: llhttp's code (HPE_*) and where it stopped. */
export interface LlhttpError extends Error {
  code: string;
  bytesParsed: number;
}

interface HttpCommon {
  HTTPParser: (new () => LlhttpParser) & Record<string, number>;
  methods: string[];
}

const common = process.getBuiltinModule('_http_common') as unknown as HttpCommon;
const { HTTPParser } = common;

export const REQUEST = HTTPParser.REQUEST!;
export const ON_MESSAGE_BEGIN = HTTPParser.kOnMessageBegin!;
export const ON_HEADERS = HTTPParser.kOnHeaders!;
export const ON_HEADERS_COMPLETE = HTTPParser.kOnHeadersComplete!;
export const ON_BODY = HTTPParser.kOnBody!;
export const ON_MESSAGE_COMPLETE = HTTPParser.kOnMessageComplete!;
export const ON_EXECUTE = HTTPParser.kOnExecute!;

/** A parser for one connection's requests, strict. */
export function requestParser(): LlhttpParser {
  const parser = new HTTPParser();
  parser.initialize(REQUEST, {}, 0, 0);
  return parser;
}

/**
 * llhttp's method numbers, by name. The binding gives a request's method as
 * llhttp's enum value; node:http maps it with a table it does not export,
 * so the table is read back here by parsing one request line per method.
 */
function methodTable(): string[] {
  const table: string[] = [];
  const parser = new HTTPParser();
  for (const name of common.methods) {
    parser.initialize(REQUEST, {}, 0, 0);
    let index: number | undefined;
    parser[ON_HEADERS_COMPLETE] = (_major: number, _minor: number, _headers: unknown, method: number) => {
      index = method;
      return 0;
    };
    parser.execute(Buffer.from(`${name} / HTTP/1.1\r\nhost: x\r\n\r\n`, 'latin1'));
    if (index !== undefined) table[index] = name;
  }
  parser.free();
  if (table[1] !== 'GET' || !table.includes('POST')) throw new Error('cannot read the HTTP parser\'s method numbers (a Node.js without the expected _http_common)');
  return table;
}

export const METHOD_NAMES: readonly string[] = methodTable();
