/** What runc says about one container: shared by the runc CLI wrapper and the state-file reader. */

export type RuncStatus = 'creating' | 'created' | 'running' | 'pausing' | 'paused' | 'stopped';

/** One entry of `runc list --format json` / `runc state`. */
export interface RuncState {
  id: string;
  pid: number;
  status: RuncStatus;
  bundle: string;
  rootfs?: string;
  created: string;
  annotations?: Record<string, string>;
  /**
   * The init's parent pid, when this state was computed from runc's state file (the same
   * /proc/PID/stat read that tells it alive): the supervision check needs it, and a list over a
   * thousand containers then reads each /proc/PID/stat once instead of twice. Not from runc.
   */
  initPpid?: number;
}
