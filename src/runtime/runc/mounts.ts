// runc-runtime.ts imports these from here; new code imports them from util/mounts.ts.
export { mountsUnder, unmountAll } from '../../util/mounts.js';
