/** The Git source from its flags, for `run` (polling) and `apply`/`plan` (one fetch); loaded only with --git or by run. */
import path from 'node:path';
import { UsageError } from './command.js';
import { parseDuration } from './args.js';
import { messageOf } from '../contracts/errors.js';
import type { Logger } from '../contracts/logger.js';
import type { SourceProblem } from '../contracts/source.js';
import { GitSource, normalizeSubpath } from '../sources/git/source.js';
import { checkRefSyntax } from '../sources/git/refs.js';
import type { NodeCapacity } from '../sources/kube/desired.js';

export interface GitFlagValues {
  git?: string;
  ref?: string;
  path?: string;
  'verify-signatures'?: string;
  interval?: string;
}

/** The Git source of the flags, or undefined without --git. Throws UsageError on bad flags. */
export function gitSourceFromFlags(
  values: GitFlagValues,
  o: {
    stateDir: string;
    cacheDir?: string;
    node: string;
    allowEmpty: boolean;
    capacity?: NodeCapacity;
    logger?: Logger;
    onRevision?: (r: string) => void;
    onWarning?: (w: SourceProblem) => void;
  },
): GitSource | undefined {
  if (values.git === undefined) {
    for (const f of ['ref', 'path', 'verify-signatures'] as const) if (values[f] !== undefined) throw new UsageError(`--${f} needs --git URL`);
    return undefined;
  }
  if (values.git === '' || values.git.startsWith('-')) throw new UsageError(`--git '${values.git}' is not a repository URL`);
  if (values.ref !== undefined) {
    const bad = checkRefSyntax(values.ref);
    if (bad) throw new UsageError(bad);
  }
  let subpath: string;
  try {
    subpath = normalizeSubpath(values.path);
  } catch (err) {
    throw new UsageError(messageOf(err));
  }
  const intervalMs = values.interval !== undefined ? parseDuration(values.interval, '--interval') : 60_000;
  if (intervalMs <= 0) throw new UsageError('--interval must be more than 0');
  const keyring = values['verify-signatures'] !== undefined ? path.resolve(values['verify-signatures']) : undefined;
  return new GitSource({
    url: values.git,
    ...(values.ref !== undefined ? { ref: values.ref } : {}),
    subpath,
    intervalMs,
    cacheDir: o.cacheDir ?? path.join(o.stateDir, 'git'),
    ...(keyring ? { keyring } : {}),
    allowEmpty: o.allowEmpty,
    nodeName: o.node,
    ...(o.capacity ? { capacity: o.capacity } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.onRevision ? { onRevision: o.onRevision } : {}),
    ...(o.onWarning ? { onWarning: o.onWarning } : {}),
    backoffBaseMs: envMs('ACETATE_GIT_BACKOFF_BASE_MS') ?? 1000,
  });
}

function envMs(name: string): number | undefined {
  const v = process.env[name];
  const n = v === undefined || v === '' ? NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}
