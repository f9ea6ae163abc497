// Prints its arguments, selected environment and working directory, and a line
// on stderr: the demo and the tests use it to check what reaches the guest.
use std::env;

fn main() {
    let args: Vec<String> = env::args().collect();
    println!("hello from wasm");
    println!("args: {}", args.join(" "));
    let mut vars: Vec<(String, String)> = env::vars().collect();
    vars.sort();
    for (k, v) in vars {
        println!("env: {}={}", k, v);
    }
    eprintln!("stderr: hello");
}
