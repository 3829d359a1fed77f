/**
 * Flows of a removed port mapping ended: the DNAT of a flow is decided at its first packet and
 * kept in the kernel's connection tracking, so a UDP sender that keeps sending (or a TCP connection
 * kept open) would keep reaching the container after its rule is gone, for as long as it keeps
 * the flow alive. Docker and kube-proxy delete those entries; so does acetate, with the `conntrack`
 * tool (conntrack-tools: no netlink library for Node is kept up), matching what the mapping made:
 * original destination port = hostPort, reply from the container's address and port.
 */
import { publishedOnly } from '../../api/ports.js';
import type { PublishedPort } from '../../api/types.js';
import { exec, ExecError } from '../../util/exec.js';

export async function deletePortFlows(containerIp: string, ports: readonly PublishedPort[]): Promise<void> {
  for (const p of publishedOnly(ports)) {
    const args = [
      '-D',
      '-p',
      p.protocol.toLowerCase(),
      '--orig-port-dst',
      String(p.hostPort),
      '--reply-src',
      containerIp,
      '--reply-port-src',
      String(p.containerPort),
    ];
    try {
      await exec('conntrack', args, { timeoutMs: 30_000 });
    } catch (err) {
      // Exit status 1 with "0 flow entries have been deleted": there was none.
      if (err instanceof ExecError && /0 flow entries/.test(err.stderr)) continue;
      throw new Error(`cannot delete the tracked flows of ${p.hostPort}/${p.protocol} → ${containerIp}:${p.containerPort}`, { cause: err });
    }
  }
}
