/**
 * The image store of a CLI process. skopeo itself reads the node's registries.conf (+ drop-ins),
 * policy.json and the usual auth files (${XDG_RUNTIME_DIR}/containers/auth.json,
 * ~/.config/containers/auth.json, ~/.docker/config.json, $REGISTRY_AUTH_FILE). Two variables add to
 * that: $ACETATE_AUTH_FILE (passed as --authfile) and $ACETATE_REGISTRIES_CONF (another
 * registries.conf: skopeo's mirrors/insecure/blocked in place of the node's, and short-name
 * aliases read after the node's; see api/image-short-names.ts and skopeo.ts).
 */
import { ImageStore, type ImageStoreOptions } from './store.js';

export function imageStoreFromEnv(
  stateDir: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: Pick<ImageStoreOptions, 'readOnly' | 'lock' | 'registryTimeoutMs'> = {},
): ImageStore {
  return new ImageStore({
    stateDir,
    ...opts,
    ...(env.ACETATE_AUTH_FILE ? { authFile: env.ACETATE_AUTH_FILE } : {}),
    ...(env.ACETATE_REGISTRIES_CONF ? { registriesConf: env.ACETATE_REGISTRIES_CONF } : {}),
  });
}
