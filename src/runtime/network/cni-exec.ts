/**
 * Runs one CNI plugin as the CNI spec says (SPEC.md, "Execution protocol"): the operation and the
 * container in environment variables (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
 * CNI_ARGS, CNI_PATH), the network configuration as JSON on stdin, the result (ADD) or a
 * structured error as JSON on stdout. No CNI library exists for Node, and the protocol is these
 * few lines; nerdctl and Podman 3 drive the same plugin binaries the same way (through libcni).
 */
import path from 'node:path';
import { exec, ExecError } from '../../util/exec.js';

export const CNI_VERSION = '1.0.0';
/** Where Debian's containernetworking-plugins puts the reference plugins. */
export const DEFAULT_CNI_PATH = '/usr/lib/cni';
/** A plugin that does not answer in this long has hung (e.g. a stuck iptables lock). */
const PLUGIN_TIMEOUT_MS = 60_000;

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

/** The CNI result (spec "Success"), the parts acetate reads. */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

/** A plugin's error (spec "Error"): code 11 "try again later", 7 invalid config, 999 and up plugin-specific. */
export class CniError extends Error {
  constructor(
    readonly plugin: string,
    readonly command: CniCommand,
    readonly code: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`CNI ${command} ${plugin}: ${message}`, options);
    this.name = 'CniError';
  }
}

export interface PluginCall {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs, e.g. { IP: '10.90.0.5' } (host-local's requested address). */
  args?: Record<string, string>;
  /** The plugin's configuration: `type` names the binary; name, cniVersion, prevResult... included. */
  config: Record<string, unknown> & { type: string };
  cniPath?: string;
}

export async function callPlugin(call: PluginCall): Promise<CniResult | undefined> {
  const cniPath = call.cniPath ?? DEFAULT_CNI_PATH;
  const binary = path.join(cniPath, call.config.type);
  const args = call.args && Object.keys(call.args).length ? ['IgnoreUnknown=1', ...Object.entries(call.args).map(([k, v]) => `${k}=${v}`)].join(';') : '';
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifname,
    CNI_PATH: cniPath,
    ...(args ? { CNI_ARGS: args } : {}),
  };
  try {
    const { stdout } = await exec(binary, [], { env, input: JSON.stringify(call.config), timeoutMs: PLUGIN_TIMEOUT_MS });
    if (call.command !== 'ADD') return undefined;
    return JSON.parse(stdout) as CniResult;
  } catch (err) {
    if (err instanceof ExecError) {
      const parsed = parseCniError(err.stdout);
      if (parsed) throw new CniError(call.config.type, call.command, parsed.code, parsed.msg + (parsed.details ? `: ${parsed.details}` : ''), { cause: err });
      throw new CniError(call.config.type, call.command, undefined, err.message, { cause: err });
    }
    throw new CniError(call.config.type, call.command, undefined, `cannot run ${binary}: ${(err as Error).message}`, { cause: err });
  }
}

function parseCniError(stdout: string): { code?: number; msg: string; details?: string } | undefined {
  try {
    const e = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
    return typeof e.msg === 'string' ? { code: e.code, msg: e.msg, details: e.details } : undefined;
  } catch {
    return undefined;
  }
}
