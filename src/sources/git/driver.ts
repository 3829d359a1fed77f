/**
 * What the Git source asks of Git, behind an interface (as the Runtime's drivers are): the source
 * decides what to fetch and when, the driver only runs Git. GitCli (git-cli.ts) is the one driver.
 */

export interface GitDriver {
  /** Creates the bare cache repository when it does not exist. */
  init(repo: string): Promise<void>;
  /** The remote's refs, name → commit (annotated tags peeled to their commit). */
  lsRemote(url: string): Promise<Map<string, string>>;
  /** Shallow fetch (depth 1) of a ref name or commit hash into repo; returns the commit fetched. */
  fetch(repo: string, url: string, what: string): Promise<string>;
  /** Writes the files of commit under subpath ('' for all) into dest (created; committed symlinks stay symlinks). */
  checkout(repo: string, commit: string, dest: string, subpath: string): Promise<void>;
  /** Whether commit carries a good signature by one of the keys of keyring (ASCII-armored OpenPGP public keys). */
  verify(repo: string, commit: string, keyring: string): Promise<SignatureCheck>;
}

export interface SignatureCheck {
  ok: boolean;
  /** What git/gpg found, for describe and the log: "good signature by KEY", "no signature", ... */
  detail: string;
}

/** A failure to get a revision: the source keeps the last good one and retries with back-off. */
export class GitSourceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GitSourceError';
  }
}
