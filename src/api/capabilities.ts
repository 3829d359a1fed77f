/** The Linux capabilities a Container may add or drop (securityContext.capabilities). */

/** Every capability of Linux up to 5.9 (what runc 1.1 knows). */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** CAP_NET_ADMIN for NET_ADMIN or net_admin; ALL stays ALL. */
export function capabilityName(c: string): string {
  const up = c.toUpperCase();
  return up === 'ALL' || up.startsWith('CAP_') ? up : `CAP_${up}`;
}

/**
 * Docker's default capability set without CAP_NET_RAW (as Podman's since 4.0, and Kubernetes'
 * restricted Pod Security level): raw and packet sockets let a container craft frames with any
 * source (ARP spoofing, packets to the node's loopback through the gateway). `ping` still works
 * through ICMP datagram sockets where net.ipv4.ping_group_range allows them; a container that
 * needs raw sockets asks with securityContext.capabilities.add: [NET_RAW] (shown by `plan`).
 * docs/networking.md compares the set with Docker's and Podman's.
 */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/**
 * Docker's rules: add ALL = every cap minus drops; drop ALL = only adds; else (base − drops) ∪
 * adds, the base being the default set (all of them when privileged). Names as capabilityName
 * gives them; in the kernel's order, each once.
 */
export function capabilitySet(security: { privileged: boolean; capAdd: readonly string[]; capDrop: readonly string[] }): string[] {
  const { capAdd: add, capDrop: drop } = security;
  const base = security.privileged ? ALL_CAPABILITIES : DEFAULT_CAPABILITIES;
  let caps: readonly string[];
  if (add.includes('ALL')) caps = ALL_CAPABILITIES.filter((c) => !drop.includes(c));
  else if (drop.includes('ALL')) caps = add;
  else caps = [...base.filter((c) => !drop.includes(c)), ...add];
  return ALL_CAPABILITIES.filter((c) => caps.includes(c));
}
