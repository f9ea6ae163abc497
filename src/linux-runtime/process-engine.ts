// The `process` isolation level: the guest runs inside the calling process,
// with no runc at all — the shim itself (one host for every `process`
// container it serves) or `tugboat run`. What confines a guest is the Wasm
// sandbox, the host's kernel-resolved paths beneath its root and preopens,
// and its memory limit; there is no namespace, cgroup or seccomp filter of
// its own. For edge devices without runc or cgroups, and for tests.
//
// `tugboat run --isolation process`: the root is the container's overlay (or
// copy) as at `container` level, `-v` directories become extra preopens of
// the host's own directories (nothing is mounted), `-m` caps the guest's
// memory, the guest's stdio is the CLI's, and SIGINT/SIGTERM/… end the guest
// with 128+N.
import { closeSync, constants as fsc, openSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { ConfigError, UsageError } from '../errors.js';
import { log } from '../log.js';
import type { Mount, Spec } from '../oci/runtime-spec.js';
import type { HostDir } from '../wasi-host/preview1/preopen-dirs.js';
import { LocalHost } from '../wasi-host/shared/local-host.js';
import type { EngineSettings, ForegroundOptions, PortMapping, PreparedWorkload, WasmEngine, WasmPrepareInput } from './engine.js';
import { isBindMount } from './guest-mounts.js';
import { checkPreopens, ensureCwd, hostedGuestSpec, hostedWorkload, memoryLimitOf, prepareHosted, withComponent, type HostedComponentInfo } from './hosted-workload.js';
import type { Preopen } from '../wasi-host/guest-config.js';

/** The shim's own host: every `process` container of this shim is a guest of it. */
let shimHost: LocalHost | undefined;

/** A host in this process, its guests' thread bundles from the kit. */
function localHost(kitDir: string): LocalHost {
  return new LocalHost({ componentWorker: join(kitDir, 'host', 'hosted-component.mjs'), httpWorker: join(kitDir, 'host', 'http-worker.mjs') });
}

export function processHost(kitDir: string): LocalHost {
  return (shimHost ??= localHost(kitDir));
}

/** Signals `tugboat run` relays to its guest (each ends it with 128+N). */
const RELAYED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** Bind mounts of directories become preopens of the host's own directories; nothing else can be given without a mount. */
function volumeDirs(mounts: readonly Mount[] | undefined): HostDir[] {
  const out: HostDir[] = [];
  for (const m of mounts ?? []) {
    if (!isBindMount(m) || !m.source) continue;
    let dir = false;
    try {
      dir = statSync(m.source).isDirectory();
    } catch {
      throw new ConfigError(`volume ${m.source}: does not exist`, { kind: 'InvalidArgument' });
    }
    if (!dir) {
      log().info({ source: m.source, destination: m.destination }, 'a file mount is not given to a guest at process isolation (only directories become preopens)');
      continue;
    }
    out.push({ guest: m.destination, fd: openSync(m.source, fsc.O_RDONLY | fsc.O_DIRECTORY), readonly: (m.options ?? []).includes('ro') });
  }
  return out;
}

/** The public port of an HTTP component at process level: `-p HOST:CONTAINER` for its port, else its port itself. */
function publicPort(component: HostedComponentInfo | undefined, ports: readonly PortMapping[]): number | undefined {
  if (ports.length === 0) return undefined;
  if (component?.world !== 'http') throw new UsageError('-p: only an HTTP component (wasi:http) serves a port at process isolation');
  const m = ports.find((p) => p.container === component.port);
  if (!m || ports.length > 1) throw new UsageError(`-p: the component serves one port, ${component.port} (io.tugboat.http.port, PORT, else 8080): use -p HOST:${component.port}`);
  return m.host;
}

interface Here {
  spec: Spec;
  rootfs: string;
  preopens: Preopen[];
  module: string | undefined;
  component: HostedComponentInfo | undefined;
  kitDir: string;
}

async function runHere(h: Here, options: ForegroundOptions = {}): Promise<number> {
  const port = publicPort(h.component, options.ports ?? []);
  const host = localHost(h.kitDir);
  const key = 'main';
  const spec = h.spec;
  const rootFd = openSync(h.rootfs, fsc.O_RDONLY | fsc.O_DIRECTORY);
  let componentFd = -1;
  let hostDirs: HostDir[] = [];
  try {
    hostDirs = volumeDirs(spec.mounts);
    ensureCwd(rootFd, spec.process!.cwd || '/');
    checkPreopens(rootFd, h.preopens);
    // This process owns the cache entry: no mount needed to keep it from the guest, which sees only its root and preopens.
    if (h.component) componentFd = openSync(h.component.source, fsc.O_RDONLY | fsc.O_DIRECTORY);
    const guest = hostedGuestSpec(spec.process!, { module: h.module, preopens: h.preopens, memoryLimit: memoryLimitOf(spec.linux?.resources), rootFd, stdio: [0, 1, 2] });
    await host.create(key, withComponent({ ...guest, hostDirs }, h.component, componentFd, port));
  } finally {
    closeSync(rootFd);
    if (componentFd >= 0) closeSync(componentFd);
    for (const d of hostDirs) closeSync(d.fd);
  }
  const relay = (name: NodeJS.Signals) => void host.kill(key, osConstants.signals[name]);
  for (const s of RELAYED) process.on(s, relay);
  try {
    await host.start(key);
    return (await host.ended(key)).status;
  } finally {
    for (const s of RELAYED) process.off(s, relay);
    await host.delete(key);
  }
}

async function prepare(input: WasmPrepareInput): Promise<PreparedWorkload> {
  const { spec, preopens, component } = await prepareHosted(input, 'process');
  const here: Here = { spec, rootfs: input.rootfs, preopens, module: input.workload.entrypoint, component, kitDir: input.settings.kitDir };
  return hostedWorkload({
    workload: input.workload,
    isolation: 'process',
    spec,
    rootfs: input.rootfs,
    preopens,
    ...(component ? { component } : {}),
    host: async () => processHost(input.settings.kitDir),
    runForeground: (options) => runHere(here, options),
  });
}

function describe(_settings: EngineSettings): string {
  return 'process: guests in the calling process (no runc)';
}

export const processEngine: WasmEngine = { level: 'process', prepare, reopen: () => undefined, describe };
