// What the kernel under the tests can do, where a test's expectation depends on it.
import { release } from 'node:os';

/** Linux 6.7 or later: userfaultfd's asynchronous write-protect and PAGEMAP_SCAN (src/wasi-host/http/written-pages.ts). Debian 12's own 6.1 has neither. */
export const KERNEL_TELLS_WRITTEN_PAGES = ((): boolean => {
  const [major = 0, minor = 0] = release().split(/[.-]/).map(Number);
  return major > 6 || (major === 6 && minor >= 7);
})();
