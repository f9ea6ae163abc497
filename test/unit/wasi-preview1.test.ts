// Pure parts of Tugboat's preview1 host: the descriptor table, rights and
// the errno mapping.
import { describe, expect, it } from 'vitest';
import { E, FILETYPE, R } from '../../src/wasi-host/preview1/abi.js';
import { errnoOf, LINUX, WasiError, wasiErrno } from '../../src/wasi-host/preview1/errno.js';
import { FdTable } from '../../src/wasi-host/preview1/fd-table.js';
import { DIR_INHERITING, DIR_RIGHTS, FILE_RIGHTS, holds, preopenRights, WRITE_RIGHTS } from '../../src/wasi-host/preview1/rights.js';

const entry = (name: string, rights = FILE_RIGHTS) => ({ handle: name, filetype: FILETYPE.REGULAR_FILE, rightsBase: rights, rightsInheriting: 0n, fdflags: 0 });

describe('fd table', () => {
  it('gives the lowest free number, as open(2) does', () => {
    const t = new FdTable<string>();
    expect([t.insert(entry('a')), t.insert(entry('b')), t.insert(entry('c'))]).toEqual([0, 1, 2]);
    t.remove(1);
    expect(t.insert(entry('d'))).toBe(1);
    expect(t.insert(entry('e'))).toBe(3);
  });
  it('EBADF for a closed descriptor, ENOTCAPABLE for a missing right', () => {
    const t = new FdTable<string>();
    const fd = t.insert(entry('a', R.FD_READ));
    expect(() => t.get(7)).toThrow(expect.objectContaining({ errno: E.BADF }));
    expect(() => t.get(fd, R.FD_WRITE)).toThrow(expect.objectContaining({ errno: E.NOTCAPABLE }));
    expect(t.get(fd, R.FD_READ).handle).toBe('a');
    t.remove(fd);
    expect(() => t.remove(fd)).toThrow(expect.objectContaining({ errno: E.BADF }));
  });
  it('renumber moves an entry onto an open number and returns the one replaced', () => {
    const t = new FdTable<string>();
    const a = t.insert(entry('a'));
    const b = t.insert(entry('b'));
    expect(t.renumber(a, b)?.handle).toBe('b');
    expect(t.get(b).handle).toBe('a');
    expect(t.has(a)).toBe(false);
    expect(() => t.renumber(a, b)).toThrow(expect.objectContaining({ errno: E.BADF }));
    expect(() => t.renumber(b, 9)).toThrow(expect.objectContaining({ errno: E.BADF }));
    expect(t.renumber(b, b)).toBeUndefined();
    expect(t.insert(entry('c'))).toBe(0);
  });
  it('clear hands back every entry for release', () => {
    const t = new FdTable<string>();
    t.insert(entry('a'));
    t.insert(entry('b'));
    expect(t.clear().map((e) => e.handle).sort()).toEqual(['a', 'b']);
    expect(t.all()).toEqual([]);
  });
});

describe('rights', () => {
  it('a read-only preopen hands out no right that changes the file system', () => {
    const ro = preopenRights(true);
    expect(ro.base & WRITE_RIGHTS).toBe(0n);
    expect(ro.inheriting & WRITE_RIGHTS).toBe(0n);
    expect(holds(ro.base, R.PATH_OPEN | R.FD_READDIR | R.PATH_FILESTAT_GET)).toBe(true);
    expect(holds(ro.inheriting, R.FD_READ | R.FD_SEEK)).toBe(true);
  });
  it('a writable preopen has the directory rights and passes on file rights', () => {
    const rw = preopenRights(false);
    expect(rw.base).toBe(DIR_RIGHTS);
    expect(rw.inheriting).toBe(DIR_INHERITING);
    expect(holds(rw.inheriting, R.FD_WRITE | R.FD_FILESTAT_SET_SIZE)).toBe(true);
    expect(holds(DIR_RIGHTS, R.FD_READ)).toBe(false);
  });
});

describe('errno mapping', () => {
  it.each([
    [LINUX.ENOENT, E.NOENT], [LINUX.EACCES, E.ACCES], [LINUX.EEXIST, E.EXIST], [LINUX.ENOTDIR, E.NOTDIR],
    [LINUX.EISDIR, E.ISDIR], [LINUX.ELOOP, E.LOOP], [LINUX.EXDEV, E.XDEV], [LINUX.EAGAIN, E.AGAIN],
    [LINUX.EPIPE, E.PIPE], [LINUX.ENOTEMPTY, E.NOTEMPTY], [LINUX.EROFS, E.ROFS], [LINUX.EOPNOTSUPP, E.NOTSUP],
    [LINUX.ENAMETOOLONG, E.NAMETOOLONG], [LINUX.EBADF, E.BADF], [LINUX.ENOTSOCK, E.NOTSOCK], [LINUX.ESPIPE, E.SPIPE],
  ])('Linux %i → WASI %i', (linux, wasi) => {
    expect(wasiErrno(linux)).toBe(wasi);
  });
  it('an errno it does not know is EIO, never success', () => {
    expect(wasiErrno(4242)).toBe(E.IO);
    expect(wasiErrno(0)).toBe(E.IO);
  });
  it("maps Node's fd-call errors through the same table and rethrows host bugs", () => {
    const nodeErr = Object.assign(new Error('EBADF: bad file descriptor, read'), { errno: -9, code: 'EBADF', syscall: 'read' });
    expect(errnoOf(nodeErr)).toBe(E.BADF);
    expect(errnoOf(new WasiError(E.PERM))).toBe(E.PERM);
    expect(() => errnoOf(new TypeError('a host bug'))).toThrow(TypeError);
  });
});
