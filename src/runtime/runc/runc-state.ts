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
}
