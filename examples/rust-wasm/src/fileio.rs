// File I/O through WASI: `fileio read PATH`, `fileio write PATH TEXT`,
// `fileio append PATH TEXT`, `fileio ls DIR`. Errors go to stderr with exit 1.
use std::env;
use std::fs;
use std::io::Write;
use std::process::exit;

fn fail(what: &str, err: std::io::Error) -> ! {
    eprintln!("fileio: {}: {}", what, err);
    exit(1)
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let op = args.get(1).map(String::as_str).unwrap_or("");
    let path = args.get(2).cloned().unwrap_or_default();
    match op {
        "read" => match fs::read_to_string(&path) {
            Ok(s) => print!("{}", s),
            Err(e) => fail(&path, e),
        },
        "write" => {
            if let Err(e) = fs::write(&path, args.get(3).cloned().unwrap_or_default()) {
                fail(&path, e)
            }
            println!("wrote {}", path);
        }
        "append" => {
            let mut f = fs::OpenOptions::new().create(true).append(true).open(&path).unwrap_or_else(|e| fail(&path, e));
            writeln!(f, "{}", args.get(3).cloned().unwrap_or_default()).unwrap_or_else(|e| fail(&path, e));
        }
        "ls" => {
            let mut names: Vec<String> = fs::read_dir(&path)
                .unwrap_or_else(|e| fail(&path, e))
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            names.sort();
            for n in names {
                println!("{}", n);
            }
        }
        _ => {
            eprintln!("usage: fileio read|write|append|ls PATH [TEXT]");
            exit(2)
        }
    }
}
