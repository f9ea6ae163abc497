// Registry credentials, kept where Docker keeps them so that `docker login`
// and `tugboat login` share them: ~/.docker/config.json (or $DOCKER_CONFIG,
// podman's $REGISTRY_AUTH_FILE, or --authfile), either inline
// (`auths.<host>.auth` = base64 "user:password") or in a credential helper
// (`credsStore`, `credHelpers.<host>`: `docker-credential-<name> get|store|erase`,
// server URL or JSON on stdin, JSON on stdout).

import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError, RegistryError } from '../../errors.js';
import { writeFileAtomic } from '../image-writer.js';
import { DOCKER_HUB } from './reference.js';

export type Credentials = { username: string; password: string } | { identityToken: string };

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [other: string]: unknown;
}

/** Docker Hub's credentials are filed under its v1 index URL, for compatibility with every Docker client. */
const HUB_KEY = 'https://index.docker.io/v1/';
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const HELPER_TIMEOUT_MS = 30_000;

export function authFilePath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  return join(homedir(), '.docker', 'config.json');
}

function keyFor(registry: string): string {
  return registry === DOCKER_HUB ? HUB_KEY : registry;
}

/** "https://host:5000/v2/" → "host:5000"; the Hub's many names → docker.io. */
function hostOfKey(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  return ['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'].includes(host) ? DOCKER_HUB : host;
}

async function readAuthFile(path: string): Promise<AuthFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path}: invalid JSON: ${(err as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${path}: not a JSON object`);
  const f = v as AuthFile;
  if (f.auths !== undefined && (typeof f.auths !== 'object' || f.auths === null)) throw new ConfigError(`${path}: auths must be an object`);
  return f;
}

async function writeAuthFile(path: string, f: AuthFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, JSON.stringify(f, null, '\t') + '\n', 0o600);
}

function helperFor(f: AuthFile, registry: string): string | undefined {
  const helpers = f.credHelpers ?? {};
  const named = Object.entries(helpers).find(([k]) => hostOfKey(k) === registry)?.[1];
  const name = named ?? f.credsStore;
  if (name === undefined || name === '') return undefined;
  if (!HELPER_NAME.test(name)) throw new ConfigError(`credential helper name ${JSON.stringify(name)} is not valid`);
  return name;
}

function runHelper(name: string, action: 'get' | 'store' | 'erase', input: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [action], { stdio: ['pipe', 'pipe', 'pipe'], timeout: HELPER_TIMEOUT_MS });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ConfigError(err.code === 'ENOENT' ? `credential helper ${bin} not found on PATH` : `credential helper ${bin}: ${err.message}`)),
    );
    child.once('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

function entryCredentials(e: AuthEntry, path: string, key: string): Credentials | undefined {
  if (e.identitytoken) return { identityToken: e.identitytoken };
  if (e.auth) {
    const plain = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = plain.indexOf(':');
    if (i < 0) throw new ConfigError(`${path}: auths.${key}.auth is not base64 of "user:password"`);
    return { username: plain.slice(0, i), password: plain.slice(i + 1) };
  }
  if (e.username !== undefined && e.password !== undefined) return { username: e.username, password: e.password };
  return undefined;
}

/** The credentials on file for `registry`, or undefined (anonymous). */
export async function lookupCredentials(registry: string, authFile?: string): Promise<Credentials | undefined> {
  const path = authFilePath(authFile);
  const f = await readAuthFile(path);
  const helper = helperFor(f, registry);
  if (helper) {
    const r = await runHelper(helper, 'get', keyFor(registry));
    if (r.code !== 0) {
      if (/credentials not found/i.test(r.stdout + r.stderr)) return undefined;
      throw new RegistryError(`credential helper docker-credential-${helper} failed for ${registry}: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
    }
    let v: { Username?: unknown; Secret?: unknown };
    try {
      v = JSON.parse(r.stdout) as typeof v;
    } catch {
      throw new RegistryError(`credential helper docker-credential-${helper} gave no JSON for ${registry}`);
    }
    if (typeof v.Secret !== 'string' || typeof v.Username !== 'string') return undefined;
    // Docker's convention: the user "<token>" means the secret is an identity (refresh) token.
    return v.Username === '<token>' ? { identityToken: v.Secret } : { username: v.Username, password: v.Secret };
  }
  for (const [key, entry] of Object.entries(f.auths ?? {})) {
    if (hostOfKey(key) !== registry || typeof entry !== 'object' || entry === null) continue;
    const c = entryCredentials(entry, path, key);
    if (c) return c;
  }
  return undefined;
}

/** Saves credentials as Docker does: through the configured helper, else base64 in the file (mode 0600). Returns where. */
export async function storeCredentials(registry: string, username: string, password: string, authFile?: string): Promise<string> {
  const path = authFilePath(authFile);
  const f = await readAuthFile(path);
  const helper = helperFor(f, registry);
  if (helper) {
    const r = await runHelper(helper, 'store', JSON.stringify({ ServerURL: keyFor(registry), Username: username, Secret: password }));
    if (r.code !== 0) throw new RegistryError(`credential helper docker-credential-${helper} could not store credentials: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
    return `docker-credential-${helper}`;
  }
  const auths = Object.fromEntries(Object.entries(f.auths ?? {}).filter(([k]) => hostOfKey(k) !== registry));
  auths[keyFor(registry)] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  await writeAuthFile(path, { ...f, auths });
  return path;
}

/** Forgets the credentials of `registry`; false if there were none. */
export async function eraseCredentials(registry: string, authFile?: string): Promise<boolean> {
  const path = authFilePath(authFile);
  const f = await readAuthFile(path);
  let found = false;
  const helper = helperFor(f, registry);
  if (helper) {
    const r = await runHelper(helper, 'erase', keyFor(registry));
    if (r.code === 0) found = true;
    else if (!/not found/i.test(r.stdout + r.stderr)) {
      throw new RegistryError(`credential helper docker-credential-${helper} could not erase credentials: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
    }
  }
  const auths = f.auths ?? {};
  const kept = Object.fromEntries(Object.entries(auths).filter(([k]) => hostOfKey(k) !== registry));
  if (Object.keys(kept).length !== Object.keys(auths).length) {
    found = true;
    await writeAuthFile(path, { ...f, auths: kept });
  }
  return found;
}
