// `exitcode N` exits with N; `exitcode trap` executes an unreachable
// instruction; `exitcode sleep S` sleeps S seconds (for signal tests);
// `exitcode alloc MB` touches MB mebibytes of memory (for memory limits);
// `exitcode sleepalloc S MB` sleeps S seconds, then allocates MB (for a limit
// changed while a guest runs); `exitcode spin` computes for ever without a
// system call (for fairness, pause and kill in shared hosts); `exitcode ticks
// N MS` sleeps MS milliseconds N times and prints how late it woke up (median,
// 90th percentile, worst: for a neighbour's timer).
use std::env;
use std::io::Write;
use std::process::exit;
use std::time::Instant;
use std::{thread, time::Duration};

fn alloc(mb: usize) {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for i in 0..mb {
        chunks.push(vec![(i % 251) as u8 + 1; 1 << 20]);
    }
    println!("allocated {} MiB", chunks.len());
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let arg = args.get(1).map(String::as_str).unwrap_or("0");
    let num = |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    match arg {
        "trap" => {
            println!("about to trap");
            std::process::abort();
        }
        "sleep" => {
            let secs = num(2, 60);
            println!("sleeping {}s", secs);
            thread::sleep(Duration::from_secs(secs));
        }
        "alloc" => alloc(num(2, 256) as usize),
        "sleepalloc" => {
            let secs = num(2, 1);
            println!("sleeping {}s", secs);
            std::io::stdout().flush().ok();
            thread::sleep(Duration::from_secs(secs));
            alloc(num(3, 256) as usize);
        }
        "spin" => {
            println!("spinning");
            std::io::stdout().flush().ok();
            let mut h: u64 = 0xcbf29ce484222325;
            loop {
                // A volatile store: the loop cannot be optimised away.
                unsafe { std::ptr::write_volatile(&mut h, h.wrapping_mul(0x100000001b3).rotate_left(17) ^ 1) };
            }
        }
        "ticks" => {
            let n = num(2, 100);
            let ms = num(3, 20);
            println!("ticking");
            std::io::stdout().flush().ok();
            let mut late: Vec<u128> = Vec::new();
            for _ in 0..n.max(1) {
                let t0 = Instant::now();
                thread::sleep(Duration::from_millis(ms));
                late.push(t0.elapsed().as_micros().saturating_sub(ms as u128 * 1000));
            }
            late.sort();
            let at = |q: usize| late[(late.len() - 1) * q / 100];
            println!("lateness p50 {} us p90 {} us worst {} us", at(50), at(90), at(100));
        }
        n => exit(n.parse().unwrap_or_else(|_| {
            eprintln!("exitcode: not a number: {}", n);
            2
        })),
    }
}
