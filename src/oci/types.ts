// OCI image-spec and distribution types, narrowed to the fields Tugboat uses.
// Docker's v2 schema 2 media types are accepted wherever the OCI ones are.

export const MediaType = {
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  WasmConfig: 'application/vnd.wasm.config.v0+json',
  WasmLayer: 'application/wasm',
} as const;

/** Layer media types whose content is a tar (plain, gzip or zstd): their diff_id is the digest of the tar. */
export const TAR_LAYER_TYPES: readonly string[] = [
  MediaType.OciLayer,
  MediaType.OciLayerGzip,
  MediaType.OciLayerZstd,
  'application/vnd.docker.image.rootfs.diff.tar',
  MediaType.DockerLayerGzip,
  'application/vnd.docker.image.rootfs.diff.tar.zstd',
];

/** Layer media types whose content is a raw Wasm binary rather than a tar. */
export const WASM_LAYER_TYPES: readonly string[] = [
  'application/wasm',
  'application/vnd.wasm.content.layer.v1+wasm',
  'application/vnd.bytecodealliance.wasm.component.layer.v0+wasm',
  'application/vnd.module.wasm.content.layer.v1+wasm',
];

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageConfigProcess {
  User?: string;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, object>;
  Volumes?: Record<string, object>;
  StopSignal?: string;
}

export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: ImageConfigProcess;
  rootfs?: { type: 'layers'; diff_ids: string[] };
  history?: unknown[];
  /** CNCF Wasm artifact config fields (application/vnd.wasm.config.v0+json). */
  layerDigests?: string[];
  component?: { exports: string[]; imports: string[]; target?: string | null };
}

/** The well-known annotation holding a tag inside an OCI layout's index.json. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
