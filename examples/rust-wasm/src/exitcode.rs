// `exitcode N` exits with N; `exitcode trap` executes an unreachable
// instruction; `exitcode sleep S` sleeps S seconds (for signal tests);
// `exitcode alloc MB` touches MB mebibytes of memory (for memory limits).
use std::env;
use std::process::exit;
use std::{thread, time::Duration};

fn main() {
    let args: Vec<String> = env::args().collect();
    let arg = args.get(1).map(String::as_str).unwrap_or("0");
    match arg {
        "trap" => {
            println!("about to trap");
            std::process::abort();
        }
        "sleep" => {
            let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
            println!("sleeping {}s", secs);
            thread::sleep(Duration::from_secs(secs));
        }
        "alloc" => {
            let mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            for i in 0..mb {
                chunks.push(vec![(i % 251) as u8 + 1; 1 << 20]);
            }
            println!("allocated {} MiB", chunks.len());
        }
        n => exit(n.parse().unwrap_or_else(|_| {
            eprintln!("exitcode: not a number: {}", n);
            2
        })),
    }
}
