// A syscall-heavy workload for the host benchmark (bench/syscalls.mjs):
// `syscalls DIR N` writes N small files under DIR (spread over 100
// directories), reads each back, stats each, then walks the tree. Prints a
// checksum so every variant (native, node:wasi, Tugboat's host) can be
// checked to have done the same work.
use std::env;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

fn walk(dir: &Path, files: &mut u64, bytes: &mut u64) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        if meta.is_dir() {
            walk(&entry.path(), files, bytes);
        } else {
            *files += 1;
            *bytes += meta.len();
        }
    }
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let root = Path::new(args.get(1).map(String::as_str).unwrap_or("."));
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dirs = 100;
    for d in 0..dirs {
        fs::create_dir_all(root.join(format!("d{}", d))).expect("mkdir");
    }
    let path = |i: usize| root.join(format!("d{}/f{}.txt", i % dirs, i));
    for i in 0..n {
        let mut f = fs::File::create(path(i)).expect("create");
        write!(f, "file number {}\n", i).expect("write");
    }
    let mut sum: u64 = 0;
    let mut buf = String::new();
    for i in 0..n {
        buf.clear();
        fs::File::open(path(i)).expect("open").read_to_string(&mut buf).expect("read");
        sum += buf.len() as u64;
    }
    for i in 0..n {
        sum += fs::metadata(path(i)).expect("stat").len();
    }
    let (mut files, mut bytes) = (0u64, 0u64);
    walk(root, &mut files, &mut bytes);
    println!("files {} bytes {} sum {}", files, bytes, sum);
}
