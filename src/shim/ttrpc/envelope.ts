// The ttrpc Request/Response envelopes around every method payload.
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { type Request, RequestSchema, ResponseSchema, type Response } from '../proto/gen/ttrpc_pb.js';
import { MESSAGE_LENGTH_MAX } from './frame.js';
import { Code, MSG } from './status.js';

export type { Request, Response };

/**
 * Encode a reply. OK replies carry an empty Status (`0a 00`), as ttrpc's
 * server always sets one. A reply that would break the 4 MiB frame limit is
 * replaced by RESOURCE_EXHAUSTED: the peer would drop an oversize frame.
 */
export function encodeResponse(code: Code, message: string, payload?: Uint8Array): Uint8Array {
  const data = toBinary(ResponseSchema, create(ResponseSchema, { status: { code, message }, payload: payload ?? new Uint8Array() }));
  if (data.length <= MESSAGE_LENGTH_MAX) return data;
  return encodeResponse(Code.RESOURCE_EXHAUSTED, MSG.oversize(data.length, MESSAGE_LENGTH_MAX));
}

export function decodeResponse(data: Uint8Array): Response {
  return fromBinary(ResponseSchema, data);
}

export function encodeRequest(r: {
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano?: bigint;
  metadata?: { key: string; value: string }[];
}): Uint8Array {
  return toBinary(RequestSchema, create(RequestSchema, r));
}

export function decodeRequest(data: Uint8Array): Request {
  return fromBinary(RequestSchema, data);
}
