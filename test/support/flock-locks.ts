/** flock(2) locks on a file as other processes see them (util-linux flock, /proc/locks): for tests of the images lock. */
import { spawnSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';

/** Whether another process could take the file exclusive now (flock -n, as `image prune` first tries). */
export function freeForOthers(file: string): boolean {
  return spawnSync('flock', ['--nonblock', '--exclusive', file, 'true']).status === 0;
}

/** flock(2) locks on the file's inode as /proc/locks lists them: granted ones, and those waited for (`->`), by mode. */
export async function flocksOn(file: string): Promise<{ granted: string[]; waiting: string[] }> {
  const ino = (await stat(file)).ino;
  const lines = (await readFile('/proc/locks', 'utf8')).split('\n').filter((l) => / FLOCK /.test(l) && l.includes(`:${ino} `));
  const mode = (l: string): string => (/ (READ|WRITE) /.exec(l)?.[1] === 'READ' ? 'shared' : 'exclusive');
  return { granted: lines.filter((l) => !/->/.test(l)).map(mode), waiting: lines.filter((l) => /->/.test(l)).map(mode) };
}
