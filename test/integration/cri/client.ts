// A small typed CRI (runtime.v1) client for the integration tests: our own
// trimmed api.proto (beside this file) loaded at run time with
// @grpc/proto-loader, calls made over one @grpc/grpc-js channel to
// containerd's unix socket. Field names stay snake_case as on the wire
// (keepCase), int64 values come back as decimal strings (longs: String), enums
// as their names, bytes as Buffers, and absent fields as their defaults.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CRI_PROTO = join(dirname(fileURLToPath(import.meta.url)), 'proto', 'api.proto');

// ---------------------------------------------------------------------------
// messages (the subset declared in api.proto)

/** int64 as sent: a number or a decimal string. */
export type Int64In = number | string;
type StrMap = Record<string, string>;

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';
export type PodSandboxState = 'SANDBOX_READY' | 'SANDBOX_NOTREADY';
export type ContainerState = 'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

export interface NamespaceOption {
  network?: NamespaceMode;
  pid?: NamespaceMode;
  ipc?: NamespaceMode;
  target_id?: string;
}

export interface PodSandboxMetadata {
  name: string;
  uid: string;
  namespace: string;
  attempt?: number;
}

export interface PodSandboxConfig {
  metadata: PodSandboxMetadata;
  hostname?: string;
  /** Absolute; container log_path values are relative to it. */
  log_directory?: string;
  dns_config?: { servers?: string[]; searches?: string[]; options?: string[] };
  labels?: StrMap;
  annotations?: StrMap;
  linux?: {
    cgroup_parent?: string;
    security_context?: { namespace_options?: NamespaceOption; run_as_user?: { value: Int64In }; readonly_rootfs?: boolean; privileged?: boolean };
    sysctls?: StrMap;
  };
}

export interface ImageSpec {
  image: string;
  annotations?: StrMap;
}

export interface Mount {
  container_path: string;
  host_path: string;
  readonly?: boolean;
  selinux_relabel?: boolean;
  propagation?: 'PROPAGATION_PRIVATE' | 'PROPAGATION_HOST_TO_CONTAINER' | 'PROPAGATION_BIDIRECTIONAL';
}

export interface ContainerConfig {
  metadata: { name: string; attempt?: number };
  image: ImageSpec;
  command?: string[];
  args?: string[];
  working_dir?: string;
  envs?: { key: string; value: string }[];
  mounts?: Mount[];
  labels?: StrMap;
  annotations?: StrMap;
  /** Relative to the pod's log_directory. */
  log_path?: string;
  stdin?: boolean;
  stdin_once?: boolean;
  tty?: boolean;
  linux?: {
    resources?: { cpu_period?: Int64In; cpu_quota?: Int64In; cpu_shares?: Int64In; memory_limit_in_bytes?: Int64In; oom_score_adj?: Int64In };
    security_context?: {
      capabilities?: { add_capabilities?: string[]; drop_capabilities?: string[] };
      privileged?: boolean;
      namespace_options?: NamespaceOption;
      run_as_user?: { value: Int64In };
      readonly_rootfs?: boolean;
      no_new_privs?: boolean;
      /** Localhost: `localhost_ref` is the profile file's path on the node. */
      seccomp?: { profile_type: 'RuntimeDefault' | 'Unconfined' | 'Localhost'; localhost_ref?: string };
    };
  };
}

export interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

export interface StatusResponse {
  status: { conditions: { type: string; status: boolean; reason: string; message: string }[] } | null;
  info: StrMap;
}

export interface PodSandboxStatus {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: PodSandboxState;
  /** ns since the epoch */
  created_at: string;
  network: { ip: string; additional_ips: { ip: string }[] } | null;
  linux: { namespaces: { options: NamespaceOption | null } | null } | null;
  labels: StrMap;
  annotations: StrMap;
  runtime_handler: string;
}

export interface PodSandboxStatusResponse {
  status: PodSandboxStatus | null;
  /** With verbose: {"info": "<JSON document>"} (containerd's sandbox record, pid, netns path, …). */
  info: StrMap;
}

export interface PodSandbox {
  id: string;
  metadata: PodSandboxMetadata | null;
  state: PodSandboxState;
  created_at: string;
  labels: StrMap;
  annotations: StrMap;
  runtime_handler: string;
}

export interface PodSandboxFilter {
  id?: string;
  state?: { state: PodSandboxState };
  label_selector?: StrMap;
}

export interface ContainerFilter {
  id?: string;
  state?: { state: ContainerState };
  pod_sandbox_id?: string;
  label_selector?: StrMap;
}

export interface Container {
  id: string;
  pod_sandbox_id: string;
  metadata: { name: string; attempt: number } | null;
  image: ImageSpec | null;
  image_ref: string;
  state: ContainerState;
  created_at: string;
  labels: StrMap;
  annotations: StrMap;
}

export interface ContainerStatus {
  id: string;
  metadata: { name: string; attempt: number } | null;
  state: ContainerState;
  created_at: string;
  started_at: string;
  finished_at: string;
  exit_code: number;
  image: ImageSpec | null;
  image_ref: string;
  reason: string;
  message: string;
  labels: StrMap;
  annotations: StrMap;
  mounts: Mount[];
  /** Absolute path of the CRI-format log file. */
  log_path: string;
}

export interface ContainerStatusResponse {
  status: ContainerStatus | null;
  info: StrMap;
}

export interface ExecSyncResponse {
  stdout: Buffer;
  stderr: Buffer;
  exit_code: number;
}

export interface Image {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: string;
  uid: { value: string } | null;
  username: string;
  spec: ImageSpec | null;
  pinned: boolean;
}

// ---------------------------------------------------------------------------
// client

export interface CallOptions {
  /** Per-call deadline (default 60 s; ExecSync and StopContainer add their own timeout to it). */
  timeoutMs?: number;
}

export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`CRI ${method}: ${grpc.status[code] ?? code}: ${details}`);
    this.name = 'CriError';
  }
}

let packageDefinition: protoLoader.PackageDefinition | undefined;

function loadDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.loadSync(CRI_PROTO, {
    keepCase: true,
    longs: String,
    enums: String,
    bytes: Buffer,
    defaults: true,
    arrays: true,
    objects: false,
    oneofs: true,
  });
  return packageDefinition;
}

function method(service: 'RuntimeService' | 'ImageService', name: string): protoLoader.MethodDefinition<object, object> {
  const svc = loadDefinition()[`runtime.v1.${service}`] as protoLoader.ServiceDefinition | undefined;
  const m = svc?.[name];
  if (!m) throw new Error(`${CRI_PROTO} declares no runtime.v1.${service}/${name}`);
  return m;
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class CriClient {
  private readonly client: grpc.Client;
  readonly address: string;

  /** `socketPath`: containerd's grpc socket (the CRI services share it). */
  constructor(socketPath: string) {
    this.address = `unix://${socketPath}`;
    this.client = new grpc.Client(this.address, grpc.credentials.createInsecure(), {
      // Status/PodSandboxStatus with verbose can be large; keep containerd's own limit.
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
    });
  }

  close(): void {
    this.client.close();
  }

  private call<Res>(service: 'RuntimeService' | 'ImageService', name: string, req: object, opts: CallOptions = {}): Promise<Res> {
    const m = method(service, name);
    const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<object, object>(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), { deadline }, (err, res) => {
        if (err) reject(new CriError(name, err.code, err.details));
        else resolve(res as Res);
      });
    });
  }

  // --- RuntimeService -------------------------------------------------------

  version(opts?: CallOptions): Promise<VersionResponse> {
    return this.call('RuntimeService', 'Version', { version: 'v1' }, opts);
  }

  status(verbose = false, opts?: CallOptions): Promise<StatusResponse> {
    return this.call('RuntimeService', 'Status', { verbose }, opts);
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = '', opts?: CallOptions): Promise<string> {
    const r = await this.call<{ pod_sandbox_id: string }>('RuntimeService', 'RunPodSandbox', { config, runtime_handler: runtimeHandler }, { timeoutMs: 180_000, ...opts });
    return r.pod_sandbox_id;
  }

  async stopPodSandbox(podSandboxId: string, opts?: CallOptions): Promise<void> {
    await this.call('RuntimeService', 'StopPodSandbox', { pod_sandbox_id: podSandboxId }, { timeoutMs: 120_000, ...opts });
  }

  async removePodSandbox(podSandboxId: string, opts?: CallOptions): Promise<void> {
    await this.call('RuntimeService', 'RemovePodSandbox', { pod_sandbox_id: podSandboxId }, { timeoutMs: 120_000, ...opts });
  }

  podSandboxStatus(podSandboxId: string, verbose = false, opts?: CallOptions): Promise<PodSandboxStatusResponse> {
    return this.call('RuntimeService', 'PodSandboxStatus', { pod_sandbox_id: podSandboxId, verbose }, opts);
  }

  async listPodSandbox(filter?: PodSandboxFilter, opts?: CallOptions): Promise<PodSandbox[]> {
    const r = await this.call<{ items: PodSandbox[] }>('RuntimeService', 'ListPodSandbox', filter ? { filter } : {}, opts);
    return r.items;
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig, opts?: CallOptions): Promise<string> {
    const r = await this.call<{ container_id: string }>('RuntimeService', 'CreateContainer', { pod_sandbox_id: podSandboxId, config, sandbox_config: sandboxConfig }, { timeoutMs: 120_000, ...opts });
    return r.container_id;
  }

  async startContainer(containerId: string, opts?: CallOptions): Promise<void> {
    await this.call('RuntimeService', 'StartContainer', { container_id: containerId }, { timeoutMs: 120_000, ...opts });
  }

  /** SIGTERM (or the image's StopSignal), then SIGKILL after `timeoutSec`. */
  async stopContainer(containerId: string, timeoutSec = 10, opts?: CallOptions): Promise<void> {
    await this.call('RuntimeService', 'StopContainer', { container_id: containerId, timeout: timeoutSec }, { timeoutMs: timeoutSec * 1000 + 60_000, ...opts });
  }

  async removeContainer(containerId: string, opts?: CallOptions): Promise<void> {
    await this.call('RuntimeService', 'RemoveContainer', { container_id: containerId }, { timeoutMs: 120_000, ...opts });
  }

  async listContainers(filter?: ContainerFilter, opts?: CallOptions): Promise<Container[]> {
    const r = await this.call<{ containers: Container[] }>('RuntimeService', 'ListContainers', filter ? { filter } : {}, opts);
    return r.containers;
  }

  containerStatus(containerId: string, verbose = false, opts?: CallOptions): Promise<ContainerStatusResponse> {
    return this.call('RuntimeService', 'ContainerStatus', { container_id: containerId, verbose }, opts);
  }

  /** `timeoutSec` 0 = containerd waits for the command however long it runs. */
  execSync(containerId: string, cmd: string[], timeoutSec = 30, opts?: CallOptions): Promise<ExecSyncResponse> {
    return this.call('RuntimeService', 'ExecSync', { container_id: containerId, cmd, timeout: timeoutSec }, { timeoutMs: timeoutSec * 1000 + 60_000, ...opts });
  }

  // --- ImageService ---------------------------------------------------------

  async listImages(opts?: CallOptions): Promise<Image[]> {
    const r = await this.call<{ images: Image[] }>('ImageService', 'ListImages', {}, opts);
    return r.images;
  }

  /** null when containerd's CRI does not know the image (by name, id or digest). */
  async imageStatus(image: string, opts?: CallOptions): Promise<Image | null> {
    const r = await this.call<{ image: Image | null }>('ImageService', 'ImageStatus', { image: { image } }, opts);
    return r.image;
  }
}
