/**
 * check() and create(): a container's private area and record, without starting it. A new
 * container appears whole (built under a temporary name, renamed into place with its record).
 */
import { renameSync } from 'node:fs';
import { existsNow, makeDirs, removePaths, writeSmallFile } from '../../util/small-file.js';
import { hashOf } from '../../api/hash.js';
import { containerKey } from '../../api/types.js';
import type { CreateRequest } from '../runtime.js';
import { appliedRecord } from '../applied-record.js';
import { InvalidError } from '../../contracts/errors.js';
import { buildOciConfig } from './oci-config.js';
import { MAX_ID_LENGTH } from './paths.js';
import type { RuncContext } from './runc-context.js';
import { writeJsonAtomic } from '../../util/json-file.js';
import { readRecord } from './store.js';
import { ociConfigInput, refuseStateDirMounts } from './config-input.js';
import { withTempDir } from './temp-dirs.js';
import { assignContainerIds } from '../walls/walls.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * fn as a user of the image store when the container is made from an image: no `image rm|prune`
 * removes the image between the moment its layers are resolved and the moment the container's
 * record names it (from then on the container is a user `runtime.list()` shows). Nested calls
 * (check and create inside a replace's) join the caller's hold.
 */
export function asImageUser<T>(rc: RuncContext, req: CreateRequest, fn: () => Promise<T>): Promise<T> {
  return req.spec.image ? rc.images.lock.shared(fn) : fn();
}

/** Throws what create(req) would refuse; changes nothing (but pulls the image if it is not here). */
export function checkCreate(rc: RuncContext, req: CreateRequest): Promise<void> {
  return asImageUser(rc, req, async () => {
    const t = rc.target(containerKey(req.namespace, req.name));
    await refuseStateDirMounts(rc, req.spec.mounts);
    buildOciConfig(await ociConfigInput(rc, { namespace: req.namespace, name: req.name, spec: req.spec, specHash: hashOf(req.spec) }, t.cp));
  });
}

export function createContainer(rc: RuncContext, req: CreateRequest): Promise<void> {
  return asImageUser(rc, req, () => create(rc, req));
}

async function create(rc: RuncContext, req: CreateRequest): Promise<void> {
  if (!DNS_LABEL.test(req.namespace)) throw new InvalidError(`invalid namespace '${req.namespace}': must be a DNS-1123 label`);
  if (!DNS_SUBDOMAIN.test(req.name)) throw new InvalidError(`invalid name '${req.name}': must be a DNS-1123 subdomain`);
  const t = rc.target(containerKey(req.namespace, req.name));
  if (t.id.length > MAX_ID_LENGTH) throw new InvalidError(`${t.key}: namespace and name are too long together (max ${MAX_ID_LENGTH} characters)`);
  const { cp } = t;
  // Fail early: a missing template, or what the OCI config refuses (a mount path with '..'...).
  await refuseStateDirMounts(rc, req.spec.mounts);
  const specHash = hashOf(req.spec);
  buildOciConfig(await ociConfigInput(rc, { namespace: req.namespace, name: req.name, spec: req.spec, specHash }, cp));
  await rc.locks.run(t.key, async () => {
    const dirExists = existsNow(cp.dir);
    const existing = dirExists ? await readRecord(cp.record) : undefined;
    const record = appliedRecord(req, existing?.createdAt ?? new Date(rc.now()).toISOString());
    if (dirExists) {
      // Re-created over a kept private area (a replace), or a record being rewritten.
      await makeDirs([...rc.disk.plainLayers(cp, record), cp.rootfs]);
      // No record: a status file here is of an earlier container; none reads as never started.
      if (!existing) await removePaths([cp.status]);
      // Before the record: a replace that changes the mapping records the new range first.
      await assignIds(rc, cp.dir, req);
      await writeJsonAtomic(cp.record, record);
      return;
    }
    // A new container appears whole: its directory is built under a temporary name and renamed
    // into place with its record, so a SIGKILL never leaves a directory without a record (which
    // nothing would ever clean up once the container is no longer declared).
    await withTempDir(rc, 'creating', t.id, async (tmp) => {
      // No status file yet: none reads as never started. Nothing else sees this dir before the
      // rename, so the record needs no write-and-rename of its own. The run dir's part (bundle,
      // exit dir) is made by each start.
      const under = (p: string) => tmp + p.slice(cp.dir.length);
      await makeDirs([...rc.disk.plainLayers(cp, record), cp.rootfs].map(under));
      await writeSmallFile(under(cp.record), `${JSON.stringify(record)}\n`);
      renameSync(tmp, cp.dir);
    });
    // After the rename: allocation reads the container dirs in place. A create killed before this
    // leaves no range; the start assigns one (walls.ts isolationInputs).
    await assignIds(rc, cp.dir, req);
  });
}

/** The container's own id range for hostUsers: false, or none (walls/id-ranges.ts). */
function assignIds(rc: RuncContext, dir: string, req: CreateRequest): Promise<unknown> {
  return assignContainerIds({ paths: rc.paths, settings: rc.opts.isolation ?? {} }, dir, req.spec, req.idRange);
}
