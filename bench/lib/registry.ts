/**
 * A real registry for tests and the images benchmark: Debian's docker-registry (the CNCF distribution registry) on
 * 127.0.0.1:<free port>, with a temporary config and storage, optionally behind htpasswd auth.
 * stop() ends the process and removes its dir. Plus a registries.conf marking it insecure (plain
 * HTTP), which acetate's skopeo honours as it would the node's /etc/containers/registries.conf.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from './local-net.js';
import { waitFor } from './wait.js';

export { freePort };

export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const TEST_USER = 'acetate';
export const TEST_PASSWORD = 'acetate-test-pw';
/** bcrypt (cost 4) of TEST_PASSWORD: the registry's htpasswd format. */
const TEST_HTPASSWD = `${TEST_USER}:$2y$04$MGA8sKZxwX66s/7H7bZ69ukY5MMMjuiHydkBN97Nsb.BQLQmz8rse\n`;

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  dir: string;
  storage: string;
  /** A registries.conf that marks this registry insecure (HTTP). */
  registriesConf: string;
  stop(): Promise<void>;
  /** Starts it again on the same port and storage (after stop-like tests use kill()). */
  kill(): Promise<void>;
  restart(): Promise<void>;
}

async function answers(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(1000) });
    return r.status === 200 || r.status === 401;
  } catch {
    return false;
  }
}

/** A registries.conf marking `hosts` as insecure (HTTP) registries. */
export async function writeRegistriesConf(file: string, hosts: string[]): Promise<string> {
  await writeFile(file, hosts.map((h) => `[[registry]]\nlocation = "${h}"\ninsecure = true\n`).join('\n'));
  return file;
}

export async function startRegistry(opts: { auth?: boolean } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp('/tmp/acetate-registry-');
  const storage = path.join(dir, 'storage');
  await mkdir(storage);
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const auth = opts.auth ? `auth:\n  htpasswd:\n    realm: acetate-test\n    path: ${dir}/htpasswd\n` : '';
  if (opts.auth) await writeFile(path.join(dir, 'htpasswd'), TEST_HTPASSWD);
  const config = path.join(dir, 'config.yml');
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\n  cache:\n    blobdescriptor: inmemory\nhttp:\n  addr: ${host}\n${auth}`,
  );
  const registriesConf = await writeRegistriesConf(path.join(dir, 'registries.conf'), [host]);
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'ignore'] });
    const c = child;
    await waitFor(`registry on ${host}`, async () => (c.exitCode !== null ? Promise.reject(new Error(`registry exited ${c.exitCode}`)) : answers(port)), {
      timeoutMs: 15_000,
    });
  };
  const kill = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  await launch();
  return {
    host,
    port,
    dir,
    storage,
    registriesConf,
    kill,
    restart: launch,
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** docker-registry processes still serving the test registry of `dir` (none after stop()). */
export async function registryProcessesOf(dir: string): Promise<number[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const out: number[] = [];
  for (const p of (await readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
    const cmd = await readFile(`/proc/${p}/cmdline`, 'utf8').catch(() => '');
    if (cmd.startsWith(REGISTRY_BIN) && cmd.includes(`${dir}/`)) out.push(Number(p));
  }
  return out;
}
