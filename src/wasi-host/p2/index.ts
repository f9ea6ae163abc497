// wasi:filesystem for components on Tugboat's kernel-resolved host.
export { createFilesystem, guestCwd, type ComponentFilesystem, type GuestDirFds } from './filesystem.js';
export { Descriptor } from './descriptor.js';
export { DirectoryEntryStream } from './directory-stream.js';
export { hostInputStream, hostOutputStream, filesystemErrorCode, type InputStream, type OutputStream } from './io.js';
export { wasiImports, type CliImports, type ImportParts } from './imports.js';
