// CPU-bound kernel for bench/compute: counts primes below N with a sieve and
// mixes in an integer hash loop, so both memory and ALU paths are exercised.
// Built for wasm32-wasi and natively from the same source.
use std::env;

fn sieve(n: usize) -> usize {
    let mut composite = vec![false; n + 1];
    let mut count = 0;
    for i in 2..=n {
        if !composite[i] {
            count += 1;
            let mut j = i * i;
            while j <= n {
                composite[j] = true;
                j += i;
            }
        }
    }
    count
}

fn hash_loop(rounds: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for i in 0..rounds {
        h ^= i;
        h = h.wrapping_mul(0x100000001b3);
        h = h.rotate_left(17);
    }
    h
}

fn main() {
    let n: usize = env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20_000_000);
    let primes = sieve(n);
    let h = hash_loop(n as u64 * 10);
    println!("primes below {}: {} (hash {:016x})", n, primes, h);
}
