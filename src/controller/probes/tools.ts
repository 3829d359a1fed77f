/** The node's nsenter and static busybox, for httpGet/tcpSocket checks inside a container's network namespace. */
import { findBinary } from '../../util/find-binary.js';
import type { CheckTools } from './check.js';

let found: Promise<CheckTools> | undefined;

export function probeTools(): Promise<CheckTools> {
  found ??= (async () => {
    const nsenter = await findBinary('nsenter');
    const busybox = await findBinary('busybox');
    if (!nsenter || !busybox) {
      found = undefined; // look again next time (installed meanwhile)
      throw new Error(
        `httpGet/tcpSocket probes of a container with its own network need ${!nsenter ? 'nsenter (util-linux)' : 'busybox (apt-get install -y busybox-static)'}`,
      );
    }
    return { nsenter, busybox };
  })();
  return found;
}
