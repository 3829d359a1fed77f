/** The registry time limit as the command line gives it (apart from images/env.ts, which loads the image store). */
import { parseDuration } from '../util/duration.js';

/**
 * The registry time limit: `--registry-timeout` (given here as `flag`), else
 * $ACETATE_REGISTRY_TIMEOUT, else skopeo.ts's default (30 s). A duration such as 30s or 2m.
 */
export function registryTimeoutMs(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number | undefined {
  const [text, from] = flag !== undefined ? [flag, '--registry-timeout'] : [env.ACETATE_REGISTRY_TIMEOUT, 'ACETATE_REGISTRY_TIMEOUT'];
  if (text === undefined || text === '') return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new Error(`${from}: '${text}' is not a duration such as 30s or 2m`, { cause: err });
  }
  if (ms < 100) throw new Error(`${from}: '${text}' is too short (at least 100ms)`);
  return ms;
}
