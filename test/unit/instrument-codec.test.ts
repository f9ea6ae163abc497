// The instrumenter's decoder and encoder: every example and dependency module
// comes back byte for byte, every instruction family is walked exactly, and
// bad input of any kind ends in a typed error, never a crash or a hang.
import { describe, expect, it } from 'vitest';
import { MemoryCapError, WasmDecodeError, WasmError, WasmUnsupportedError } from '../../src/errors.js';
import { decodeModule, encodeModule, instrument } from '../../src/wasi-host/instrument/index.js';
import { dependencyModules, rustExamples, wat } from './helpers/wasm.js';

function roundTrip(bytes: Uint8Array): Uint8Array {
  return encodeModule(decodeModule(bytes, { code: true }), [], { funcShiftFrom: Infinity, code: undefined });
}

const everything = { maxMemoryPages: 1024, yieldPoints: { interval: 1000 } };

describe('round trip (decode → encode)', () => {
  it.each(rustExamples().map((m) => [m.name, m.bytes] as const))('example %s comes back identical', (_name, bytes) => {
    expect(Buffer.from(roundTrip(bytes)).equals(Buffer.from(bytes))).toBe(true);
  });

  // jco's preview1 adapters, wasm-tools, componentize-js's StarlingMonkey
  // engine (10+ MB, with and without DWARF and names), its splicer.
  const deps = dependencyModules();
  it('finds the dependency modules', () => expect(deps.length).toBeGreaterThanOrEqual(8));
  it.each(deps.map((m) => [m.name, m.bytes] as const))('dependency %s comes back identical and instruments to a valid module', (_name, bytes) => {
    expect(Buffer.from(roundTrip(bytes)).equals(Buffer.from(bytes))).toBe(true);
    const { bytes: out } = instrument(bytes, { maxMemoryPages: 65536, yieldPoints: { interval: 10000 } });
    expect(WebAssembly.validate(out)).toBe(true);
  });

  it('keeps padded LEB128 encodings where it renumbers', () => {
    // (func $a) (func (export "b") call $a), the call's index padded to 5 bytes as linkers leave relocations
    const padded = new Uint8Array([
      0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
      0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: [] -> []
      0x03, 0x03, 0x02, 0x00, 0x00, // function: two of type 0
      0x07, 0x05, 0x01, 0x01, 0x62, 0x00, 0x01, // export "b" = func 1
      0x0a, 0x0d, 0x02, 0x02, 0x00, 0x0b, 0x08, 0x00, 0x10, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b, // code
    ]);
    expect(WebAssembly.validate(padded)).toBe(true);
    expect(Buffer.from(roundTrip(padded)).equals(Buffer.from(padded))).toBe(true);
    const out = Buffer.from(instrument(padded, { yieldPoints: { interval: 10 } }).bytes);
    expect(out.includes(Buffer.from([0x10, 0x81, 0x80, 0x80, 0x80, 0x00]))).toBe(true); // call 0 → call 1, still 5 bytes
    expect(WebAssembly.validate(out)).toBe(true);
  });
});

// One module per proposal, covering each immediate shape.
const FEATURES: Record<string, string> = {
  'MVP, sign extension, saturating truncation, bulk memory, reference types': `(module
    (type $bin (func (param i32 i32) (result i32)))
    (import "env" "imp" (func $imp (param i32) (result i32)))
    (memory 1 2) (table $tab 4 funcref) (table $ext 1 externref)
    (global $g (mut i64) (i64.const -5)) (global $f32 f32 (f32.const 1.5)) (global $fr funcref (ref.func $add))
    (data $d "hello") (elem $e func $add $sub) (elem declare func $sel)
    (elem (table $tab) (i32.const 2) funcref (ref.func $add) (ref.null func))
    (func $init) (start $init)
    (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
    (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
    (func $sel (export "sel") (param i32) (result i32) (local f32 f64 i64)
      (local.set 1 (f32.const -0.5)) (local.set 2 (f64.const 1e300)) (local.set 3 (i64.const 0x7fffffffffffffff))
      (local.get 0)
      (loop $l (param i32) (result i32)
        (i32.sub (i32.const 1)) (local.tee 0) (br_if $l (local.get 0)))
      (block $b (result i32) (br_if $b (i32.const 3) (i32.const 1)))
      (i32.add)
      (select (i32.const 1) (i32.const 2))
      (select (result f64) (local.get 2) (f64.const 0) (i32.const 1)) drop
      (if (result i32) (i32.const 0) (then (i32.const 1)) (else (i32.const 2))) drop
      (block $x (block $y (br_table $x $y $x (local.get 0))))
      (i32.extend8_s) (i32.trunc_sat_f32_s (local.get 1)) drop
      (i64.trunc_sat_f64_u (local.get 2)) drop
      (i32.store16 offset=3 align=1 (i32.const 0) (i32.load8_s offset=7 (i32.const 0)))
      (f64.store (i32.const 8) (f64.load (i32.const 8)))
      (drop (memory.grow (i32.const 0))) (drop (memory.size))
      (memory.init $d (i32.const 0) (i32.const 0) (i32.const 1)) (data.drop $d)
      (memory.copy (i32.const 0) (i32.const 1) (i32.const 1)) (memory.fill (i32.const 0) (i32.const 0) (i32.const 1))
      (table.init $tab $e (i32.const 0) (i32.const 0) (i32.const 1)) (elem.drop $e)
      (table.copy $tab $tab (i32.const 0) (i32.const 1) (i32.const 1))
      (drop (table.grow $tab (ref.null func) (i32.const 1))) (drop (table.size $tab))
      (table.fill $tab (i32.const 0) (ref.func $sel) (i32.const 1))
      (table.set $ext (i32.const 0) (ref.null extern)) (drop (ref.is_null (table.get $ext (i32.const 0))))
      (global.set $g (i64.extend32_s (global.get $g)))
      (call_indirect $tab (type $bin) (i32.const 1) (i32.const 2) (i32.const 0))
      (call $imp) return))`,
  SIMD: `(module (memory 1)
    (func (export "f") (param i32) (result i32) (local v128)
      (v128.store offset=16 align=8 (local.get 0) (v128.load offset=32 (local.get 0)))
      (local.set 1 (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 31 (v128.const i32x4 1 2 3 4) (v128.const i64x2 -1 5)))
      (local.set 1 (i16x8.replace_lane 7 (local.get 1) (i16x8.extract_lane_u 3 (local.get 1))))
      (local.set 1 (v128.load8_lane 15 (local.get 0) (local.get 1)))
      (v128.store64_lane offset=8 1 (local.get 0) (local.get 1))
      (local.set 1 (v128.load32_zero (local.get 0)))
      (local.set 1 (i8x16.relaxed_swizzle (local.get 1) (local.get 1)))
      (local.set 1 (f32x4.relaxed_madd (local.get 1) (local.get 1) (local.get 1)))
      (f64x2.extract_lane 1 (local.get 1)) drop
      (i32x4.extract_lane 2 (i32x4.dot_i16x8_s (local.get 1) (local.get 1)))))`,
  'threads and atomics': `(module (memory 1 1 shared)
    (func (export "f") (param i32) (result i32)
      (i32.atomic.store (local.get 0) (i32.atomic.load offset=4 (local.get 0)))
      (drop (i64.atomic.rmw.add (local.get 0) (i64.const 1)))
      (drop (i32.atomic.rmw8.cmpxchg_u (local.get 0) (i32.const 1) (i32.const 2)))
      (drop (memory.atomic.notify (local.get 0) (i32.const 1)))
      (drop (memory.atomic.wait32 (local.get 0) (i32.const 0) (i64.const 0)))
      (drop (memory.atomic.wait64 (local.get 0) (i64.const 0) (i64.const 0)))
      atomic.fence (i32.const 0)))`,
  'tail calls': `(module (type $t (func (param i32) (result i32))) (table 1 funcref) (elem (i32.const 0) $down)
    (func $down (type $t) (if (result i32) (local.get 0) (then (return_call $down (i32.sub (local.get 0) (i32.const 1)))) (else (i32.const 0))))
    (func (export "f") (type $t) (return_call_indirect (type $t) (local.get 0) (i32.const 0))))`,
  'legacy exception handling': `(module (tag $e (param i32))
    (func $thrower (param i32) (throw $e (local.get 0)))
    (func (export "f") (param i32) (result i32)
      try (result i32)
        try
          (call $thrower (local.get 0))
        delegate 0
        (i32.const 0)
      catch $e
        try
          (throw $e (i32.const 7))
        catch_all
          rethrow 0
        end
      catch_all
        (i32.const 2)
      end))`,
  'exception handling with exnref': `(module (tag $e (param i32))
    (func (export "f") (param i32) (result i32) (local $x exnref)
      (block $h (result i32 exnref)
        (try_table (catch_ref $e $h) (throw $e (local.get 0)))
        (unreachable))
      (local.set $x) (drop)
      (local.set $x (block $all (result exnref) (try_table (catch_all_ref $all) (throw $e (i32.const 2))) (unreachable)))
      (block $h2 (result i32) (try_table (result i32) (catch $e $h2) (throw_ref (local.get $x))))
      (block $h3 (try_table (catch_all $h3) (call 0 (i32.const 1)) (drop)))))`,
  'multi-memory and memory64': `(module (memory i64 1) (memory $b 2) (data (memory $b) (i32.const 0) "x")
    (func (export "f") (param i64) (result i64)
      (i64.store offset=0x100000000 (local.get 0) (i64.load8_u (local.get 0)))
      (i32.store $b offset=4 (i32.const 0) (i32.load $b (i32.const 8)))
      (drop (memory.grow $b (i32.const 1)))
      (memory.copy $b 0 (i32.const 0) (i64.const 0) (i32.const 1))
      (memory.fill $b (i32.const 0) (i32.const 0) (i32.const 1))
      (drop (memory.size 0)) (drop (memory.size $b))
      (local.get 0)))`,
  'extended constant expressions': `(module (import "env" "base" (global $base i32))
    (global $x i32 (i32.add (global.get $base) (i32.mul (i32.const 4) (i32.const 8))))
    (global $y i64 (i64.sub (i64.const 10) (i64.const 3)))
    (memory 1) (data (offset (i32.add (global.get $base) (i32.const 16))) "z")
    (func (export "f") (result i32) (global.get $x)))`,
  'typed function references': `(module (type $ft (func (param i32) (result i32)))
    (table $t 2 (ref null $ft) (ref.func $id))
    (global $g (ref null $ft) (ref.func $id))
    (func $id (type $ft) local.get 0)
    (func (export "f") (param i32) (result i32) (local $r (ref null $ft))
      (local.set $r (global.get $g))
      (block $null (br_on_null $null (local.get $r)) drop)
      (block $b (result (ref $ft)) (br_on_non_null $b (local.get $r)) (ref.func $id))
      (local.set $r)
      (call_ref $ft (local.get 0) (ref.as_non_null (local.get $r))))
    (func (param i32) (result i32) (return_call_ref $ft (local.get 0) (table.get $t (i32.const 0)))))`,
};

describe('every instruction family', () => {
  it.each(Object.entries(FEATURES))('%s: walked exactly, round-trips, instruments to a valid module', async (_name, text) => {
    const bytes = await wat(text);
    expect(WebAssembly.validate(bytes)).toBe(true);
    expect(Buffer.from(roundTrip(bytes)).equals(Buffer.from(bytes))).toBe(true);
    const { bytes: out } = instrument(bytes, everything);
    expect(WebAssembly.validate(out)).toBe(true);
  });
});

describe('refusals', () => {
  it('refuses a GC instruction, naming its offset and opcode', async () => {
    const bytes = await wat('(module (func (result i31ref) (ref.i31 (i32.const 1))))');
    const at = Buffer.from(bytes).indexOf(Buffer.from([0xfb, 0x1c]));
    const err = errorOf(() => instrument(bytes, everything));
    expect(err).toBeInstanceOf(WasmUnsupportedError);
    expect((err as WasmUnsupportedError).offset).toBe(at);
    expect(err!.message).toBe(`unsupported Wasm GC instruction 0xfb 0x1c at byte 0x${at.toString(16)}`);
  });

  it('refuses GC types', async () => {
    const bytes = await wat('(module (type $s (struct (field i32))) (func (result (ref $s)) (struct.new $s (i32.const 1))))');
    expect(() => instrument(bytes, everything)).toThrow(/^unsupported Wasm GC type definition 0x5f at byte 0xb$/);
  });

  it.each([
    ['an unassigned opcode', [0x16], 'instruction 0x16'],
    ['an unassigned SIMD opcode', [0xfd, 0x9a, 0x01], 'SIMD instruction 0xfd 154'],
    ['an unknown 0xFC opcode', [0xfc, 0x12], 'instruction 0xfc 18'],
    ['an unknown atomic opcode', [0xfe, 0x04], 'atomic instruction 0xfe 4'],
  ])('refuses %s', (_what, code, message) => {
    const bytes = moduleWithBody([0x00, ...code, 0x0b]);
    expect(() => instrument(bytes, everything)).toThrow(new RegExp(`^unsupported Wasm ${message} at byte 0x17$`));
  });

  it('refuses a component, a bad magic and an unknown version', () => {
    expect(() => instrument(new Uint8Array([0, 0x61, 0x73, 0x6d, 0x0d, 0, 1, 0]), everything)).toThrow(/component/);
    expect(() => instrument(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 0, 0, 0]), everything)).toThrow(WasmDecodeError);
    expect(() => instrument(new Uint8Array([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]), everything)).toThrow(/unknown binary version/);
  });

  it('maps every refusal to "not runnable" (126)', () => {
    expect(new WasmDecodeError(0, 'x').exitCode).toBe(126);
    expect(new WasmUnsupportedError(0, 'x').exitCode).toBe(126);
  });
});

describe('malformed input', () => {
  it('every truncation of a module decodes or fails with a typed error', async () => {
    const bytes = await wat(FEATURES['MVP, sign extension, saturating truncation, bulk memory, reference types']!);
    for (let n = 0; n < bytes.length; n++) {
      const cut = bytes.subarray(0, n);
      const err = errorOf(() => instrument(cut, everything));
      if (err) expect(err, `cut at ${n}: ${err.message}`).toBeInstanceOf(WasmError);
    }
  });

  it('lies about sizes and counts are caught', () => {
    // a code section that claims 2^32-1 bodies, and one body that claims more bytes than there are
    expect(() => instrument(moduleWithCode([0xff, 0xff, 0xff, 0xff, 0x0f]), everything)).toThrow(/count 4294967295 exceeds/);
    expect(() => instrument(moduleWithCode([0x01, 0x7f, 0x00, 0x0b]), everything)).toThrow(/function body 0 size 127 runs past/);
    expect(() => instrument(moduleWithCode([0x01, 0x03, 0x00, 0x0b, 0x0b]), everything)).toThrow(/function body 0 has 1 bytes after its end/);
    expect(() => instrument(moduleWithCode([0x01, 0x02, 0x00, 0x01]), everything)).toThrow(/expression not terminated by end/);
    // a LEB128 that never ends
    expect(() => instrument(moduleWithCode([0x01, 0x08, 0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x0b]), everything)).toThrow(/integer representation too long/);
  });

  // Random byte edits of real modules: whatever the decoder makes of them, it
  // ends in a result or a typed error; and whenever V8 accepts the input,
  // it accepts the output too.
  it.each([
    ['hello.wasm', () => rustExamples().find((m) => m.name === 'hello.wasm')!.bytes, 150],
    ['the feature modules', async () => wat(FEATURES['typed function references']!), 400],
    ['the EH module', async () => wat(FEATURES['legacy exception handling']!), 400],
  ] as const)('fuzz: mutations of %s', async (_name, load, rounds) => {
    const original = await load();
    const random = mulberry32(0x7b0a7);
    let stillValid = 0;
    for (let i = 0; i < rounds; i++) {
      const bytes = mutate(original, random);
      const err = errorOf(() => {
        const out = instrument(bytes, everything).bytes;
        if (WebAssembly.validate(bytes)) {
          stillValid++;
          expect(WebAssembly.validate(out), `round ${i}: valid input, invalid output`).toBe(true);
        }
      });
      if (err && !(err instanceof WasmError || err instanceof MemoryCapError)) throw err;
    }
    expect(stillValid).toBeGreaterThan(0);
  });
});

function errorOf(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  return undefined;
}

/** (module (func <body>)) with the given body bytes (locals vector included). */
function moduleWithBody(body: number[]): Uint8Array {
  return moduleWithCode([0x01, body.length, ...body]);
}

function moduleWithCode(codePayload: number[]): Uint8Array {
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: [] -> []
    0x03, 0x02, 0x01, 0x00, // function: one of type 0
    0x0a, codePayload.length, ...codePayload,
  ]);
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(bytes: Uint8Array, random: () => number): Uint8Array {
  const out = [...bytes];
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const at = 8 + Math.floor(random() * (out.length - 8));
    const what = random();
    const byte = [0x00, 0x01, 0x0b, 0x7f, 0x80, 0xff, 0x40, 0x10, 0x03][Math.floor(random() * 9)]!;
    if (what < 0.5) out[at] = random() < 0.5 ? byte : Math.floor(random() * 256);
    else if (what < 0.75) out.splice(at, 0, byte);
    else out.splice(at, 1);
  }
  return new Uint8Array(out);
}
