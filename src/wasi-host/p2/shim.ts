// preview2-shim's interfaces that Tugboat uses, one module each: everything
// but its filesystem. Import the shim through this module, never through its
// index or its WASIShim (both load the filesystem module, whose Descriptor
// joins guest paths onto host paths); scripts/bundle-host.mjs fails the
// build if the component bundle ever contains the shim's filesystem.
export * as cli from '@bytecodealliance/preview2-shim/cli';
export * as clocks from '@bytecodealliance/preview2-shim/clocks';
export * as http from '@bytecodealliance/preview2-shim/http';
export * as io from '@bytecodealliance/preview2-shim/io';
export * as random from '@bytecodealliance/preview2-shim/random';
export * as sockets from '@bytecodealliance/preview2-shim/sockets';
