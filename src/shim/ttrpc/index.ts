// The ttrpc transport: framing, status codes, server, client, typed glue.
export { HEADER_LENGTH, MESSAGE_LENGTH_MAX, MessageType, FrameDecoder, encodeFrame } from './frame.js';
export type { DecodedFrame, Frame, OversizeFrame } from './frame.js';
export { Code, TtrpcClosedError, TtrpcError, codeName, statusOf } from './status.js';
export { TtrpcServer } from './server.js';
export type { CallContext, Handler } from './server.js';
export { TtrpcClient } from './client.js';
export type { CallOptions } from './client.js';
export { callMethod, registerService, serviceHandlers } from './typed.js';
export type { ServiceImpl } from './typed.js';
