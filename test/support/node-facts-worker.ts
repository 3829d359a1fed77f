/**
 * One acetate process's first look at the node facts (walls/node-facts.ts), as a fresh state dir's
 * first `apply` takes them: the owner-only entries of /etc (etc-walk.ts) and what dpkg's packages
 * own (dpkg-owned.ts), printed as JSON. A process of its own so nothing is remembered from an
 * earlier call (both keep their answer in memory per node root): what test/unit/node-facts.test.ts
 * runs for each state dir.
 *
 * Usage: node node-facts-worker.js HOST_ROOT NODE_FACTS_DIR STATE_DIR [MORE_ROOT...] (walked after /etc)
 */
import path from 'node:path';
import { packageOwned } from '../../src/runtime/walls/dpkg-owned.js';
import { etcOwnerOnly } from '../../src/runtime/walls/etc-walk.js';
import { factsStore } from '../../src/runtime/walls/node-facts.js';

const [hostRoot, nodeDir, stateDir, ...more] = process.argv.slice(2) as [string, string, string, ...string[]];
const store = factsStore(hostRoot, nodeDir, path.join(stateDir, 'host-view'));
const ownerOnly = (await etcOwnerOnly(hostRoot, Date.now(), more, store)).map((e) => e.path);
const owned = [...((await packageOwned(hostRoot, store)) ?? [])].sort();
process.stdout.write(`${JSON.stringify({ ownerOnly, owned, file: store.fileOf('owner-only') })}\n`);
