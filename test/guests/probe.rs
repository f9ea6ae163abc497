// A preview1 probe for the host's tests: raw wasi_snapshot_preview1 calls
// (no libc in between), one line per check, "name value". The tests prepare
// the root (files, links, directories) and compare the lines.
//   probe checks        run every semantic check against preopens 3 ("/"), 4 ("/b"), 5 ("/ro")
//   probe checks adapter  the same, without proc_raise (the preview1 component adapter traps on it)
//   probe spew MB       write MB mebibytes to stdout (1 MiB writes), then print nothing else
//   probe cat           copy stdin to stdout until EOF, then print "eof N" on stderr
//   probe sleep S       print "sleeping" and sleep S seconds
//   probe readlink      print "reading" on stdout and block reading stdin
//   probe escape PATH   try to read PATH through fd 3 and write PATH.pwned; print results
//   probe race PATH N   open PATH N times while the test swaps its parent for a symlink
//   probe echo-server   accept one connection on fd 3 and echo it
//   probe poll-stdin    poll_oneoff on stdin and a 10 s clock
//   probe fifo-write P  open the FIFO P for writing (waits for a reader) and write a line
use std::env;
use std::io::Write;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn path_open(fd: u32, dirflags: u32, path: *const u8, len: usize, oflags: u32, base: u64, inh: u64, fdflags: u32, out: *mut u32) -> i32;
    fn fd_close(fd: u32) -> i32;
    fn fd_read(fd: u32, iovs: *const Iov, n: usize, nread: *mut usize) -> i32;
    fn fd_write(fd: u32, iovs: *const Iov, n: usize, nwritten: *mut usize) -> i32;
    fn fd_pread(fd: u32, iovs: *const Iov, n: usize, off: u64, nread: *mut usize) -> i32;
    fn fd_pwrite(fd: u32, iovs: *const Iov, n: usize, off: u64, nwritten: *mut usize) -> i32;
    fn fd_advise(fd: u32, off: u64, len: u64, advice: u32) -> i32;
    fn fd_sync(fd: u32) -> i32;
    fn fd_datasync(fd: u32) -> i32;
    fn fd_seek(fd: u32, off: i64, whence: u32, newoff: *mut u64) -> i32;
    fn fd_readdir(fd: u32, buf: *mut u8, len: usize, cookie: u64, used: *mut usize) -> i32;
    fn fd_filestat_get(fd: u32, buf: *mut u8) -> i32;
    fn fd_filestat_set_size(fd: u32, size: u64) -> i32;
    fn fd_filestat_set_times(fd: u32, atim: u64, mtim: u64, flags: u32) -> i32;
    fn fd_fdstat_get(fd: u32, buf: *mut u8) -> i32;
    fn fd_renumber(from: u32, to: u32) -> i32;
    fn path_filestat_get(fd: u32, flags: u32, path: *const u8, len: usize, buf: *mut u8) -> i32;
    fn path_filestat_set_times(fd: u32, flags: u32, path: *const u8, len: usize, atim: u64, mtim: u64, fst: u32) -> i32;
    fn path_readlink(fd: u32, path: *const u8, len: usize, buf: *mut u8, buflen: usize, used: *mut usize) -> i32;
    fn path_create_directory(fd: u32, path: *const u8, len: usize) -> i32;
    fn path_remove_directory(fd: u32, path: *const u8, len: usize) -> i32;
    fn path_unlink_file(fd: u32, path: *const u8, len: usize) -> i32;
    fn path_rename(fd: u32, old: *const u8, oldlen: usize, newfd: u32, new: *const u8, newlen: usize) -> i32;
    fn path_symlink(old: *const u8, oldlen: usize, fd: u32, new: *const u8, newlen: usize) -> i32;
    fn path_link(oldfd: u32, flags: u32, old: *const u8, oldlen: usize, newfd: u32, new: *const u8, newlen: usize) -> i32;
    fn poll_oneoff(subs: *const u8, events: *mut u8, n: usize, nevents: *mut usize) -> i32;
    fn sock_shutdown(fd: u32, how: u32) -> i32;
    fn sock_accept(fd: u32, flags: u32, out: *mut u32) -> i32;
    fn sock_recv(fd: u32, iovs: *const Iov, n: usize, flags: u32, len: *mut usize, roflags: *mut u16) -> i32;
    fn sock_send(fd: u32, iovs: *const Iov, n: usize, flags: u32, len: *mut usize) -> i32;
    fn proc_raise(sig: u32) -> i32;
}

#[repr(C)]
struct Iov {
    buf: *const u8,
    len: usize,
}

const FOLLOW: u32 = 1;
const O_CREAT: u32 = 1;
const O_DIRECTORY: u32 = 2;
const O_EXCL: u32 = 4;
const O_TRUNC: u32 = 8;
const APPEND: u32 = 1;
const R_DATASYNC: u64 = 1 << 0;
const R_READ: u64 = 1 << 1;
const R_SEEK: u64 = 1 << 2;
const R_SYNC: u64 = 1 << 4;
const R_WRITE: u64 = 1 << 6;
const R_ADVISE: u64 = 1 << 7;
const R_READDIR: u64 = 1 << 14;
const R_FILESTAT_GET: u64 = 1 << 21;
const R_SET_SIZE: u64 = 1 << 22;
const R_SET_TIMES: u64 = 1 << 23;
const R_POLL: u64 = 1 << 27;
const ALL: u64 = (1 << 30) - 1;

fn say(name: &str, v: impl std::fmt::Display) {
    println!("{} {}", name, v);
}

fn open(dir: u32, path: &[u8], follow: bool, oflags: u32, base: u64, fdflags: u32) -> Result<u32, i32> {
    let mut fd = 0u32;
    let e = unsafe { path_open(dir, if follow { FOLLOW } else { 0 }, path.as_ptr(), path.len(), oflags, base, ALL, fdflags, &mut fd) };
    if e == 0 { Ok(fd) } else { Err(e) }
}

fn open_code(dir: u32, path: &[u8], follow: bool, oflags: u32, base: u64) -> i32 {
    match open(dir, path, follow, oflags, base, 0) {
        Ok(fd) => {
            unsafe { fd_close(fd) };
            0
        }
        Err(e) => e,
    }
}

fn write_fd(fd: u32, data: &[u8]) -> i32 {
    let iov = Iov { buf: data.as_ptr(), len: data.len() };
    let mut n = 0;
    unsafe { fd_write(fd, &iov, 1, &mut n) }
}

fn read_all(fd: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let iov = Iov { buf: buf.as_mut_ptr(), len: buf.len() };
        let mut n = 0;
        if unsafe { fd_read(fd, &iov, 1, &mut n) } != 0 || n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

fn filestat(fd: u32) -> [u8; 64] {
    let mut b = [0u8; 64];
    unsafe { fd_filestat_get(fd, b.as_mut_ptr()) };
    b
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// Every name fd_readdir returns, reading with a `bufsize` buffer and following cookies.
fn list(fd: u32, bufsize: usize) -> Result<(Vec<String>, Vec<u64>), i32> {
    let mut names = Vec::new();
    let mut cookies = Vec::new();
    let mut cookie = 0u64;
    let mut buf = vec![0u8; bufsize];
    loop {
        let mut used = 0;
        let e = unsafe { fd_readdir(fd, buf.as_mut_ptr(), buf.len(), cookie, &mut used) };
        if e != 0 {
            return Err(e);
        }
        let mut off = 0;
        let mut progressed = false;
        while off + 24 <= used {
            let next = u64_at(&buf, off);
            let namlen = u32::from_le_bytes(buf[off + 16..off + 20].try_into().unwrap()) as usize;
            if off + 24 + namlen > used {
                break; // truncated entry: read again from its cookie
            }
            names.push(String::from_utf8_lossy(&buf[off + 24..off + 24 + namlen]).into_owned());
            cookies.push(next);
            cookie = next;
            off += 24 + namlen;
            progressed = true;
        }
        if used < buf.len() {
            return Ok((names, cookies));
        }
        if !progressed {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

fn checks() {
    let root = 3u32;
    let b = 4u32;
    let ro = 5u32;
    // Dangling symlinks: as a file, as a directory, without following, created through.
    say("dangling.file", open_code(root, b"dangling", true, 0, R_READ));
    say("dangling.dir", open_code(root, b"dangling", true, O_DIRECTORY, R_READ));
    say("dangling.nofollow", open_code(root, b"dangling", false, 0, R_READ));
    say("dangling.creat", open_code(root, b"dangling", true, O_CREAT, R_READ | R_WRITE));
    say("dangling.created", open_code(root, b"nowhere", false, 0, R_READ));
    say("dangling.excl", open_code(root, b"dangling2", true, O_CREAT | O_EXCL, R_READ | R_WRITE));
    // O_NOFOLLOW on a symlink to a file and to a directory.
    say("nofollow.file", open_code(root, b"lfile", false, 0, R_READ));
    say("follow.file", open_code(root, b"lfile", true, 0, R_READ));
    say("nofollow.dir", open_code(root, b"ldir", false, O_DIRECTORY, R_READDIR));
    say("follow.dir", open_code(root, b"ldir", true, O_DIRECTORY, R_READDIR));
    say("nofollow.intermediate", open_code(root, b"ldir/inner", false, 0, R_READ));
    // Loops, absolute links, escapes.
    say("loop", open_code(root, b"loop1", true, 0, R_READ));
    say("abs.inroot", match open(root, b"abs", true, 0, R_READ, 0) { Ok(fd) => String::from_utf8_lossy(&read_all(fd)).into_owned(), Err(e) => e.to_string() });
    say("dotdot.inroot", open_code(root, b"../../../file", true, 0, R_READ));
    say("abs.beneath", open_code(b, b"absb", true, 0, R_READ));
    say("dotdot.beneath", open_code(b, b"../file", true, 0, R_READ));
    say("up.beneath", open_code(b, b"upb/file", true, 0, R_READ));
    say("absolute.beneath", open_code(b, b"/file", true, 0, R_READ));
    say("inside.beneath", open_code(b, b"x/../bfile", true, 0, R_READ));
    // Paths: trailing NUL, trailing slash on a file, empty.
    say("path.nul", open_code(root, b"file\0", true, 0, R_READ));
    say("path.slash.file", open_code(root, b"file/", true, 0, R_READ));
    say("path.slash.dir", open_code(root, b"dir/", true, 0, R_READ));
    say("path.empty", open_code(root, b"", true, 0, R_READ));
    say("path.badutf8", open_code(root, b"\xff\xfe", true, 0, R_READ));
    // readdir: an empty directory, a large one with cookies.
    match open(root, b"empty", true, O_DIRECTORY, R_READDIR, 0) {
        Ok(fd) => {
            let (names, cookies) = list(fd, 4096).unwrap();
            say("readdir.empty", names.join(","));
            say("readdir.empty.cookies", cookies.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","));
            unsafe { fd_close(fd) };
        }
        Err(e) => say("readdir.empty", e),
    }
    match open(root, b"big", true, O_DIRECTORY, R_READDIR, 0) {
        Ok(fd) => {
            let (names, _) = list(fd, 200).unwrap();
            let mut sorted = names.clone();
            sorted.sort();
            sorted.dedup();
            say("readdir.big.count", names.len());
            say("readdir.big.unique", sorted.len());
            // Resuming from a cookie gives the same entries as reading through.
            let (all, cookies) = list(fd, 65536).unwrap();
            let mid = all.len() / 2;
            let mut buf = vec![0u8; 65536];
            let mut used = 0;
            unsafe { fd_readdir(fd, buf.as_mut_ptr(), buf.len(), cookies[mid - 1], &mut used) };
            let namlen = u32::from_le_bytes(buf[16..20].try_into().unwrap()) as usize;
            say("readdir.big.resume", String::from_utf8_lossy(&buf[24..24 + namlen]) == all[mid]);
            unsafe { fd_close(fd) };
        }
        Err(e) => say("readdir.big.count", e),
    }
    // readlink into a buffer too small: truncated, never ENOBUFS.
    let mut small = [0u8; 2];
    let mut used = 0;
    let e = unsafe { path_readlink(root, b"lfile".as_ptr(), 5, small.as_mut_ptr(), small.len(), &mut used) };
    say("readlink.small", format!("{} {} {}", e, used, String::from_utf8_lossy(&small[..used])));
    let mut big = [0u8; 64];
    let e = unsafe { path_readlink(root, b"lfile".as_ptr(), 5, big.as_mut_ptr(), big.len(), &mut used) };
    say("readlink.full", format!("{} {}", e, String::from_utf8_lossy(&big[..used])));
    say("readlink.notlink", unsafe { path_readlink(root, b"file".as_ptr(), 4, big.as_mut_ptr(), big.len(), &mut used) });
    // Times: nanosecond precision and flags.
    let fd = open(root, b"times", true, O_CREAT, R_READ | R_WRITE | R_SET_TIMES | R_FILESTAT_GET, 0).unwrap();
    say("times.set", unsafe { fd_filestat_set_times(fd, 1_000_000_123, 2_000_000_456, 1 | 4) });
    let st = filestat(fd);
    say("times.get", format!("{} {}", u64_at(&st, 40), u64_at(&st, 48)));
    say("times.both", unsafe { fd_filestat_set_times(fd, 0, 0, 1 | 2) });
    say("times.mtimonly", unsafe { fd_filestat_set_times(fd, 0, 3_000_000_789, 4) });
    let st = filestat(fd);
    say("times.get2", format!("{} {}", u64_at(&st, 40), u64_at(&st, 48)));
    say("times.now", unsafe { fd_filestat_set_times(fd, 0, 0, 2 | 8) });
    let st = filestat(fd);
    say("times.now.recent", u64_at(&st, 48) > 1_600_000_000_000_000_000);
    unsafe { fd_close(fd) };
    say("times.path.nofollow", unsafe { path_filestat_set_times(root, 0, b"ltimes".as_ptr(), 6, 5_000_000_000, 6_000_000_000, 1 | 4) });
    let mut pst = [0u8; 64];
    unsafe { path_filestat_get(root, 0, b"ltimes".as_ptr(), 6, pst.as_mut_ptr()) };
    let link_mtim = u64_at(&pst, 48);
    unsafe { path_filestat_get(root, FOLLOW, b"ltimes".as_ptr(), 6, pst.as_mut_ptr()) };
    say("times.path.link_vs_target", format!("{} {}", link_mtim, u64_at(&pst, 48) == 6_000_000_000));
    say("filestat.type.link", { unsafe { path_filestat_get(root, 0, b"lfile".as_ptr(), 5, pst.as_mut_ptr()) }; pst[16] });
    say("filestat.type.follow", { unsafe { path_filestat_get(root, FOLLOW, b"lfile".as_ptr(), 5, pst.as_mut_ptr()) }; pst[16] });
    // Truncation without the truncate right.
    let fd = open(root, b"file", true, 0, R_READ | R_WRITE, 0).unwrap();
    say("truncate.noright", unsafe { fd_filestat_set_size(fd, 0) });
    unsafe { fd_close(fd) };
    let fd = open(root, b"trunc", true, O_CREAT, R_WRITE | R_SET_SIZE | R_FILESTAT_GET, 0).unwrap();
    say("truncate.right", unsafe { fd_filestat_set_size(fd, 5) });
    say("truncate.size", u64_at(&filestat(fd), 32));
    unsafe { fd_close(fd) };
    say("truncate.ro.trunc", open_code(ro, b"rofile", true, O_TRUNC, R_READ));
    // Rights denied on a read-only preopen.
    say("ro.read", open_code(ro, b"rofile", true, 0, R_READ));
    say("ro.write", open_code(ro, b"rofile", true, 0, R_READ | R_WRITE));
    say("ro.create", open_code(ro, b"new", true, O_CREAT, R_READ));
    say("ro.mkdir", unsafe { path_create_directory(ro, b"d".as_ptr(), 1) });
    say("ro.unlink", unsafe { path_unlink_file(ro, b"rofile".as_ptr(), 6) });
    // fdflags append.
    let fd = open(root, b"app", true, O_CREAT | O_TRUNC, R_READ | R_WRITE | R_SEEK | R_SET_SIZE, 0).unwrap();
    write_fd(fd, b"abc");
    let mut pos = 0u64;
    unsafe { fd_seek(fd, 0, 0, &mut pos) };
    write_fd(fd, b"X");
    unsafe { fd_close(fd) };
    let fd = open(root, b"app", true, 0, R_READ | R_WRITE | R_SEEK, APPEND).unwrap();
    unsafe { fd_seek(fd, 0, 0, &mut pos) };
    write_fd(fd, b"Z");
    let mut fdstat = [0u8; 24];
    unsafe { fd_fdstat_get(fd, fdstat.as_mut_ptr()) };
    say("append.flags", fdstat[2]);
    unsafe { fd_close(fd) };
    let fd = open(root, b"app", true, 0, R_READ, 0).unwrap();
    say("append.content", String::from_utf8_lossy(&read_all(fd)));
    unsafe { fd_close(fd) };
    // Positional reads and writes, advice, syncs.
    let fd = open(root, b"pfile", true, O_CREAT | O_TRUNC, R_READ | R_WRITE | R_SEEK | R_ADVISE | R_SYNC | R_DATASYNC | R_FILESTAT_GET, 0).unwrap();
    let data = b"abcdef";
    let iov = Iov { buf: data.as_ptr(), len: data.len() };
    let mut n = 0;
    let e = unsafe { fd_pwrite(fd, &iov, 1, 2, &mut n) };
    say("pwrite", format!("{} {}", e, n));
    let mut pbuf = [0u8; 4];
    let iov = Iov { buf: pbuf.as_mut_ptr(), len: pbuf.len() };
    let e = unsafe { fd_pread(fd, &iov, 1, 3, &mut n) };
    say("pread", format!("{} {} {}", e, n, String::from_utf8_lossy(&pbuf[..n])));
    let e = unsafe { fd_pread(fd, &iov, 1, 100, &mut n) };
    say("pread.eof", format!("{} {}", e, n));
    say("pfile.size", u64_at(&filestat(fd), 32));
    say("advise", unsafe { fd_advise(fd, 0, 4, 2) });
    say("sync", unsafe { fd_sync(fd) });
    say("datasync", unsafe { fd_datasync(fd) });
    unsafe { fd_close(fd) };
    // sock_shutdown on a bad fd and on a file.
    say("shutdown.badf", unsafe { sock_shutdown(99, 2) });
    let fd = open(root, b"file", true, 0, R_READ | R_POLL, 0).unwrap();
    say("shutdown.file", unsafe { sock_shutdown(fd, 2) });
    // poll_oneoff on regular files: ready at once, nbytes left to read.
    let mut subs = [0u8; 96];
    subs[0] = 7;
    subs[8] = 1; // fd_read
    subs[16..20].copy_from_slice(&fd.to_le_bytes());
    subs[48] = 8;
    subs[56] = 2; // fd_write on the same file
    subs[64..68].copy_from_slice(&fd.to_le_bytes());
    let mut events = [0u8; 64];
    let mut n = 0;
    let e = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 2, &mut n) };
    say("poll.file", format!("{} {} {}:{}:{} {}:{}", e, n, events[0], u16::from_le_bytes([events[8], events[9]]), u64_at(&events, 16), events[32], u16::from_le_bytes([events[40], events[41]])));
    // An op on a directory that needs a file, and the reverse.
    let iov = Iov { buf: big.as_mut_ptr(), len: 8 };
    let mut nread = 0;
    say("dir.read", unsafe { fd_read(root, &iov, 1, &mut nread) });
    say("dir.seek", unsafe { fd_seek(root, 0, 0, &mut pos) });
    say("dir.setsize", unsafe { fd_filestat_set_size(root, 0) });
    let mut rbuf = [0u8; 128];
    say("file.readdir", unsafe { fd_readdir(fd, rbuf.as_mut_ptr(), 128, 0, &mut used) });
    let mut nfd = 0;
    say("file.path_open", unsafe { path_open(fd, 0, b"x".as_ptr(), 1, 0, R_READ, 0, 0, &mut nfd) });
    say("file.mkdir", unsafe { path_create_directory(fd, b"x".as_ptr(), 1) });
    unsafe { fd_close(fd) };
    // Path ops.
    say("mkdir", unsafe { path_create_directory(root, b"newdir".as_ptr(), 6) });
    say("mkdir.exists", unsafe { path_create_directory(root, b"newdir".as_ptr(), 6) });
    say("mkdir.dotdot", unsafe { path_create_directory(root, b"newdir/..".as_ptr(), 9) });
    say("symlink", unsafe { path_symlink(b"../file".as_ptr(), 7, root, b"newdir/l".as_ptr(), 8) });
    say("link", unsafe { path_link(root, 0, b"file".as_ptr(), 4, root, b"newdir/hard".as_ptr(), 11) });
    say("link.follow", unsafe { path_link(root, FOLLOW, b"lfile".as_ptr(), 5, root, b"newdir/hard2".as_ptr(), 12) });
    unsafe { path_filestat_get(root, 0, b"newdir/hard2".as_ptr(), 12, pst.as_mut_ptr()) };
    say("link.follow.type", pst[16]);
    say("rename", unsafe { path_rename(root, b"newdir/hard".as_ptr(), 11, root, b"newdir/hard3".as_ptr(), 12) });
    say("rmdir.notempty", unsafe { path_remove_directory(root, b"newdir".as_ptr(), 6) });
    say("unlink.dir", unsafe { path_unlink_file(root, b"newdir".as_ptr(), 6) });
    say("unlink.slash", unsafe { path_unlink_file(root, b"file/".as_ptr(), 5) });
    for p in [&b"newdir/l"[..], b"newdir/hard2", b"newdir/hard3"] {
        unsafe { path_unlink_file(root, p.as_ptr(), p.len()) };
    }
    say("rmdir", unsafe { path_remove_directory(root, b"newdir".as_ptr(), 6) });
    say("rmdir.dot", unsafe { path_remove_directory(root, b".".as_ptr(), 1) });
    say("unlink.missing", unsafe { path_unlink_file(root, b"missing".as_ptr(), 7) });
    say("symlink.escape.read", open_code(b, b"tofile", true, 0, R_READ));
    // Descriptors: renumber, close, proc_raise refused.
    let a = open(root, b"file", true, 0, R_READ, 0).unwrap();
    let c = open(root, b"file", true, 0, R_READ, 0).unwrap();
    say("renumber", unsafe { fd_renumber(a, c) });
    say("renumber.closed", unsafe { fd_renumber(a, c) });
    say("close.twice", format!("{} {}", unsafe { fd_close(c) }, unsafe { fd_close(c) }));
    if env::args().nth(2).as_deref() != Some("adapter") {
        say("proc_raise", unsafe { proc_raise(15) });
    }
    say("done", 1);
}

fn main() {
    let args: Vec<String> = env::args().collect();
    match args.get(1).map(String::as_str).unwrap_or("") {
        "checks" => checks(),
        "spew" => {
            let mb: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
            let chunk = vec![b'x'; 1 << 20];
            let mut out = std::io::stdout().lock();
            for _ in 0..mb {
                out.write_all(&chunk).unwrap();
            }
        }
        "cat" => {
            let mut total = 0;
            loop {
                let mut buf = [0u8; 65536];
                let iov = Iov { buf: buf.as_mut_ptr(), len: buf.len() };
                let mut n = 0;
                let e = unsafe { fd_read(0, &iov, 1, &mut n) };
                if e != 0 || n == 0 {
                    eprintln!("eof {} errno {}", total, e);
                    break;
                }
                total += n;
                std::io::stdout().write_all(&buf[..n]).unwrap();
            }
        }
        "sleep" => {
            println!("sleeping");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60)));
        }
        "readwait" => {
            println!("reading");
            std::io::stdout().flush().unwrap();
            let mut buf = [0u8; 16];
            let iov = Iov { buf: buf.as_mut_ptr(), len: buf.len() };
            let mut n = 0;
            let e = unsafe { fd_read(0, &iov, 1, &mut n) };
            println!("read {} {}", e, n);
        }
        "escape" => {
            let path = args.get(2).cloned().unwrap_or_default();
            let rel = path.trim_start_matches('/');
            match open(3, rel.as_bytes(), true, 0, R_READ, 0) {
                Ok(fd) => say("read", String::from_utf8_lossy(&read_all(fd))),
                Err(e) => say("read.errno", e),
            }
            let pw = format!("{}.pwned", rel);
            say("write", open_code(3, pw.as_bytes(), true, O_CREAT, R_WRITE));
        }
        "race" => {
            // Opens PATH (through fd 3, "/") again and again while someone swaps its
            // parent between a directory and a symlink; prints each distinct content read.
            let path = args.get(2).cloned().unwrap_or_default();
            let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
            let rel = path.trim_start_matches('/').to_string();
            let pw = format!("{}.pwned", rel);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..rounds {
                if let Ok(fd) = open(3, rel.as_bytes(), true, 0, R_READ, 0) {
                    seen.insert(String::from_utf8_lossy(&read_all(fd)).into_owned());
                    unsafe { fd_close(fd) };
                }
                if let Ok(fd) = open(3, pw.as_bytes(), true, O_CREAT, R_WRITE, 0) {
                    write_fd(fd, b"pwned");
                    unsafe { fd_close(fd) };
                    unsafe { path_unlink_file(3, pw.as_ptr(), pw.len()) };
                }
            }
            for s in seen {
                say("got", s);
            }
            say("done", rounds);
        }
        "poll-stdin" => {
            // Waits with poll_oneoff for stdin to be readable or 10 s to pass; prints which came first.
            let mut subs = [0u8; 96];
            subs[0] = 1;
            subs[8] = 1; // fd_read on fd 0
            subs[48] = 2;
            subs[56] = 0; // clock
            subs[64..68].copy_from_slice(&1u32.to_le_bytes()); // monotonic
            subs[72..80].copy_from_slice(&10_000_000_000u64.to_le_bytes());
            let mut events = [0u8; 64];
            let mut n = 0;
            let e = unsafe { poll_oneoff(subs.as_ptr(), events.as_mut_ptr(), 2, &mut n) };
            say("poll", format!("{} {} userdata {} type {} nbytes>0 {}", e, n, events[0], events[10], u64_at(&events, 16) > 0));
        }
        "fifo-write" => {
            // Opens the FIFO at PATH for writing (waits for a reader, as open(2) would) and writes one line.
            let path = args.get(2).cloned().unwrap_or_default();
            match open(3, path.trim_start_matches('/').as_bytes(), true, 0, R_WRITE, 0) {
                Ok(fd) => {
                    say("write", write_fd(fd, b"through the fifo\n"));
                    unsafe { fd_close(fd) };
                }
                Err(e) => say("open", e),
            }
        }
        "echo-server" => {
            // Accepts one connection on the preopened listening socket (fd 3), sends back
            // what it receives until the peer shuts its side, then shuts its own.
            let mut conn = 0u32;
            say("accept", unsafe { sock_accept(3, 0, &mut conn) });
            let mut fdstat = [0u8; 24];
            unsafe { fd_fdstat_get(conn, fdstat.as_mut_ptr()) };
            say("filetype", fdstat[0]);
            loop {
                let mut buf = [0u8; 1024];
                let iov = Iov { buf: buf.as_mut_ptr(), len: buf.len() };
                let (mut n, mut ro) = (0usize, 0u16);
                let e = unsafe { sock_recv(conn, &iov, 1, 0, &mut n, &mut ro) };
                if e != 0 || n == 0 {
                    say("recv.end", e);
                    break;
                }
                let out = Iov { buf: buf.as_ptr(), len: n };
                let mut sent = 0;
                unsafe { sock_send(conn, &out, 1, 0, &mut sent) };
            }
            say("shutdown", unsafe { sock_shutdown(conn, 2) });
            say("accept.notsock", unsafe { sock_accept(1, 0, &mut conn) });
        }
        other => {
            eprintln!("probe: unknown mode {}", other);
            std::process::exit(2);
        }
    }
}

/// The allocator the preview1 component adapter takes its own state from
/// when this module runs as a component (probe.component.wasm). Without this
/// export (Debian's rustc 1.63 emits none) the adapter grows memory for it,
/// and this module's malloc later grows its heap over that page: the
/// adapter's state is overwritten and the guest traps.
#[no_mangle]
pub unsafe extern "C" fn cabi_realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    use std::alloc::{alloc, realloc, Layout};
    if old_len == 0 {
        if new_len == 0 {
            return align as *mut u8;
        }
        return alloc(Layout::from_size_align_unchecked(new_len, align));
    }
    realloc(old, Layout::from_size_align_unchecked(old_len, align), new_len)
}
