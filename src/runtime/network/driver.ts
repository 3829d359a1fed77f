/**
 * The network driver beside the Runtime: gives a container of `network: bridge` its own network
 * namespace with an address on the node's bridge and its published ports, and takes them away.
 * The runtime calls it around the process's lifecycle; the loop never sees it (it sees the
 * container's `network` status and plans `ports`/`network` actions like any other). Another
 * backend (netavark, a CNI daemon) can implement this interface without touching the loop.
 *
 * Every method is idempotent and safe after an interruption (acetate SIGKILLed half way).
 */
import type { PublishedPort } from '../../api/types.js';

/** The node's network for bridge containers: shown in `acetate describe`. */
export interface NodeNetworkConfig {
  /** Linux bridge the containers' veths are attached to (at most 15 characters). */
  bridge: string;
  /** IPv4 subnet the addresses are taken from, e.g. 10.90.0.0/16. */
  subnet: string;
  /** The bridge's own address in the subnet (the containers' default route). */
  gateway: string;
  /** Name of the CNI network (unique per acetate instance: names its iptables rules and leases). */
  name: string;
}

/** What a container's network looks like now. */
export interface NetworkStatus {
  /** The container's IPv4 address (without prefix length). */
  ip?: string;
  /** Path of its persistent network namespace (a bind mount of nsfs): what `nsenter --net=` takes. */
  netnsPath?: string;
  /** Ports published on the node now. */
  ports: PublishedPort[];
  /** Why the network is not as it was set up (a veth deleted by hand, a rule missing...). */
  problem?: string;
}

export interface NetworkRequest {
  /** Runtime id of the container (names its namespace, leases and rules). */
  id: string;
  /** `namespace/name`, for messages. */
  key: string;
  hostname: string;
  ports: readonly PublishedPort[];
  /** The container's process, when it runs: its namespace is bound again if its file was lost. */
  pid?: number;
  /**
   * The container's user namespace range, when it has one: its network namespace is then owned by
   * a user namespace of that range (runc joins both), so the container's root administers its own
   * network (sysfs, `runc exec`). A start whose owner differs from the one set up gets a new namespace.
   */
  owner?: { hostID: number; size: number };
}

export interface NetworkSetup {
  netnsPath: string;
  /** The user namespace that owns it (request.owner), for runc to join first. */
  usernsPath?: string;
  ip: string;
  /** Files to bind-mount at /etc/hosts, /etc/hostname and /etc/resolv.conf. */
  etcFiles: { hosts: string; hostname: string; resolvConf: string };
}

/**
 * The first half of a set-up: the namespace exists (runc can be told to join it) and the /etc
 * files are written; the ports are claimed. `finish()` gives the address and publishes the ports:
 * it may run while runc creates the container, and must end before the process starts.
 */
export interface NetworkPrepared {
  netnsPath: string;
  usernsPath?: string;
  etcFiles: NetworkSetup['etcFiles'];
  finish(): Promise<NetworkSetup>;
}

export interface NetworkDriver {
  readonly config: NodeNetworkConfig;
  /** Throws a RuntimeUnavailableError when the plugins or iptables are missing. */
  preflight(): Promise<void>;
  /** Before the process starts: namespace, address, ports, /etc files. Kept across restarts. */
  setUp(req: NetworkRequest): Promise<NetworkSetup>;
  /** setUp in two halves (see NetworkPrepared). */
  prepare(req: NetworkRequest): Promise<NetworkPrepared>;
  /**
   * Reads the container's network; `deep` also asks the plugins (CNI CHECK), which costs processes;
   * `rules` looks for its published ports' rules in one listing shared by every container.
   */
  observe(id: string, opts: { deep: boolean; rules?: boolean }): Promise<NetworkStatus | undefined>;
  /** Published ports changed, or the network was found broken: fixed in place, same namespace. */
  update(req: NetworkRequest, opts: { repair: boolean }): Promise<NetworkStatus>;
  /** Releases the address, removes the rules and the namespace. */
  tearDown(id: string): Promise<void>;
  /**
   * Removes leases, rules, port claims and namespaces of containers that no longer exist (after a
   * crash, after a reboot); `exists(id)` is asked right before each removal. Returns their ids.
   */
  collectGarbage(exists: (id: string) => boolean): Promise<string[]>;
}

export type NetworkErrorReason = 'PortConflict' | 'PortInUse' | 'SubnetFull' | 'NetworkSetupFailed' | 'NetworkChanged';

/** A network failure with a CamelCase reason, shown as the reason of Ready=False. */
export class NetworkError extends Error {
  constructor(
    readonly reason: NetworkErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NetworkError';
  }
}
