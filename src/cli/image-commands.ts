// `tugboat image build|import|ls|rm` as plain async functions.
import { UsageError } from '../errors.js';
import type { BuildResult, FileToAdd, OutputFormat } from '../oci/image-build.js';
import { openImageSource, parseImageRef } from '../oci/image-source.js';
import { checkImageName } from '../oci/names.js';
import { ImageStore, type StoredImage } from '../oci/store.js';
import { tempSpace } from '../oci/temp-space.js';

export interface BuildCommandOptions {
  wasm: string;
  output: string;            // transport reference
  addTo: boolean;
  artifact: boolean;
  files: FileToAdd[];
  args: string[];
  env: string[];
  workingDir?: string;
  modulePath?: string;
}

export function parseFileMapping(value: string): FileToAdd {
  const i = value.lastIndexOf(':');
  if (i <= 0 || i === value.length - 1) throw new UsageError(`--file: expected HOST:CONTAINER, got ${JSON.stringify(value)}`);
  const containerPath = value.slice(i + 1);
  if (!containerPath.startsWith('/')) throw new UsageError(`--file: container path must be absolute: ${containerPath}`);
  return { hostPath: value.slice(0, i), containerPath };
}

export async function buildCommand(o: BuildCommandOptions): Promise<BuildResult> {
  const ref = parseImageRef(o.output);
  const format: OutputFormat = ref.transport;
  if (o.addTo && format !== 'oci') throw new UsageError('--add-to needs an oci:DIR[:TAG] reference');
  // gzip, tar and the Wasm checks: loaded by the one command that builds.
  const { buildWasmImage } = await import('../oci/image-build.js');
  return buildWasmImage({
    wasm: o.wasm,
    format,
    output: ref.path,
    ...(ref.tag !== undefined ? { tag: ref.tag } : {}),
    addTo: o.addTo,
    artifact: o.artifact,
    extraFiles: o.files,
    args: o.args,
    env: o.env,
    ...(o.workingDir !== undefined ? { workingDir: o.workingDir } : {}),
    ...(o.modulePath !== undefined ? { modulePath: o.modulePath } : {}),
  });
}

export async function importCommand(root: string, reference: string, name?: string): Promise<StoredImage> {
  const ref = parseImageRef(reference);
  const source = await openImageSource(ref, tempSpace(root));
  try {
    return await new ImageStore(root).import(source, ref.tag, name);
  } finally {
    await source.close();
  }
}

export function listCommand(root: string): Promise<StoredImage[]> {
  return new ImageStore(root).list();
}

export async function removeCommand(root: string, names: string[], force = false): Promise<void> {
  for (const n of names) checkImageName(n, 'image rm');
  const store = new ImageStore(root);
  for (const n of names) await store.remove(n, force);
}
