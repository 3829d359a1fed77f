/**
 * Where acetate finds the cluster and which node it is. The kubeconfig comes from --kubeconfig,
 * else $KUBECONFIG, else ~/.kube/config, else the in-cluster service account (the DaemonSet case).
 * The node name comes from --node, else $NODE_NAME (set from the downward API in the DaemonSet).
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export class KubeConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KubeConfigError';
  }
}

export interface LoadKubeConfigOptions {
  /** Path of a kubeconfig file (--kubeconfig). */
  kubeconfig?: string;
  /** Context to use instead of the file's current-context. */
  context?: string;
  env?: NodeJS.ProcessEnv;
}

const SA_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Loads a KubeConfig; throws KubeConfigError with a one-line fix when there is none. */
export function loadKubeConfig(opts: LoadKubeConfigOptions = {}): KubeConfig {
  const env = opts.env ?? process.env;
  const kc = new KubeConfig();
  const home = env.HOME ?? os.homedir();
  const defaultFile = path.join(home, '.kube', 'config');
  try {
    if (opts.kubeconfig) {
      if (!existsSync(opts.kubeconfig)) throw new KubeConfigError(`kubeconfig ${opts.kubeconfig} does not exist`);
      kc.loadFromFile(opts.kubeconfig);
    } else if (env.KUBECONFIG) {
      const files = env.KUBECONFIG.split(path.delimiter).filter(Boolean);
      const missing = files.filter((f) => !existsSync(f));
      if (missing.length === files.length) throw new KubeConfigError(`KUBECONFIG names no existing file (${env.KUBECONFIG})`);
      kc.loadFromFile(files.find((f) => existsSync(f))!);
    } else if (existsSync(defaultFile)) {
      kc.loadFromFile(defaultFile);
    } else if (env.KUBERNETES_SERVICE_HOST && existsSync(SA_TOKEN)) {
      kc.loadFromCluster();
    } else {
      throw new KubeConfigError('no Kubernetes configuration: set KUBECONFIG, pass --kubeconfig, or run acetate in a pod with a service account');
    }
  } catch (err) {
    if (err instanceof KubeConfigError) throw err;
    throw new KubeConfigError(`cannot load the Kubernetes configuration: ${(err as Error).message}`, { cause: err });
  }
  if (opts.context) {
    if (!kc.getContexts().some((c) => c.name === opts.context)) throw new KubeConfigError(`kubeconfig has no context ${opts.context}`);
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentCluster()) throw new KubeConfigError('the kubeconfig has no current cluster (set current-context)');
  return kc;
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The node this acetate serves: --node, else $NODE_NAME. Throws with the fix when neither is set. */
export function resolveNodeName(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const name = (flag ?? env.NODE_NAME ?? '').trim();
  if (!name) throw new KubeConfigError('acetate run --kube needs the node name: pass --node NAME or set NODE_NAME');
  if (name.length > 253 || !NODE_NAME.test(name)) throw new KubeConfigError(`'${name}' is not a valid node name`);
  return name;
}
