/** The Git source's flags and their help, light enough for every command's start-up (the source itself is loaded only when used). */

export const GIT_OPTIONS = {
  git: { type: 'string' },
  ref: { type: 'string' },
  path: { type: 'string' },
  'verify-signatures': { type: 'string' },
} as const;

export const GIT_USAGE = `  --git URL             take the manifests from a Git repository (https, ssh, git or file URL;
                        the node's ssh keys and credential helpers are used): shallow fetches into
                        STATE_DIR/git, each commit checked out whole and switched to atomically
  --ref REF             branch, tag or full commit hash (default: the remote's HEAD)
  --path SUBDIR         directory of the repository holding the manifests (default: its root)
  --verify-signatures KEYRING
                        apply only commits signed by a key of KEYRING (ASCII-armored OpenPGP
                        public keys, as gpg --armor --export writes them)`;
