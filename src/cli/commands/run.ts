/** `acetate run`: the command line; the work is in run-controller.ts, loaded only when it runs. */
import type { Command } from '../command.js';
import { DEFAULT_METRICS_ADDR } from '../../observability/http.js';
import { GIT_USAGE } from '../git-usage.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'Keep this node converged to a manifest directory (watch, reconcile, restart)',
  usage: `Usage: acetate run [-f DIR] [--git URL [--ref REF] [--path SUBDIR] [--interval 1m]] [--kube]
                   [--concurrency N] [--resync 5m]
                   [--metrics-addr 127.0.0.1:9464] [--allow-empty] [--node NAME] [--state-dir DIR]

Runs the reconcile loop in the foreground: watches DIR, and whenever a manifest changes,
a container drifts (limits changed by hand, process killed, container deleted) or a process
exits, brings the node back to what DIR declares: creates, resizes in place, restarts,
replaces and destroys containers. Level-triggered: each container is re-planned from its
desired and actual state, so a restarted acetate adopts running containers without
restarting them.

  -f, --file DIR        manifest directory (watched recursively; dotfiles, .git, editor
                        temporary/backup files and non .yaml/.yml/.json files are ignored)
${GIT_USAGE}
  --interval DURATION   how often the Git source is polled (default 1m); SIGHUP or
                        POST /sync on the metrics address fetch at once
  --concurrency N       containers reconciled at once (default 4)
  --resync DURATION     full resync of actual state (drift repair) every DURATION (default 5m;
                        exits are seen as they happen, see --process-poll)
  --relist DURATION     full re-read of DIR, catching what the watcher missed (default 5m)
  --debounce DURATION   quiet period before changed files are read (default 100ms)
  --process-poll DURATION
                        exits are seen as conmon records them (inotify); this often the
                        running processes and their supervisors are checked alive (a signal 0
                        each) and bridge containers' networks looked at (default 2s; 0 = off,
                        then a lost supervisor is noticed by the resync)
  --metrics-addr ADDR   HTTP endpoint for /metrics, /healthz, /readyz (default ${DEFAULT_METRICS_ADDR};
                        "0" disables it; port 0 picks a free port, logged at start)
  --allow-empty         let a missing or empty DIR mean "no containers" (destroys them all)
  --kube                also (or only, without -f) take the Container objects of this node
                        (spec.nodeName = --node/$NODE_NAME) from Kubernetes; status, events and
                        the acetate.dev/cleanup finalizer are written back
  --kubeconfig FILE     default $KUBECONFIG, ~/.kube/config, else in-cluster
  --kube-selector MODE  auto (default), field (Kubernetes >= 1.31 selectableFields) or label
                        (acetate.dev/node=NODE label, for older clusters)
  --node NAME           this node's name (default $NODE_NAME or the host name)
  --log-level LEVEL     error, warn, info (default) or debug
  --log-format FORMAT   json or text (default: json unless stdout is a terminal)
  --wait                when another acetate (run, apply, template) holds this state dir's
                        lock, wait for it instead of exiting 1

Restarts follow restartPolicy (Always, OnFailure, Never) with crash-loop back-off: 10s
doubling to 5 min, reset after 10 min of running. An invalid file leaves its containers
running as last applied until it is fixed; deleting a file destroys its containers.
Status, conditions and the last error of each container: acetate describe NAME.

SIGTERM or SIGINT: stop taking work, finish in-flight actions, exit 0. Registry requests in
flight (image lookups and pulls) are ended, not waited for. Containers keep running; SIGHUP
re-reads DIR and fetches the Git source.

A container whose image's registry is slow waits in ImageResolving (a reconcile waits 1 s for
it) while the others go on; each request is bounded by the global --registry-timeout.

Under a systemd Type=notify unit ($NOTIFY_SOCKET set): READY=1 after the first sync, STATUS=
lines, WATCHDOG=1 every WATCHDOG_USEC/2 while /healthz says healthy, STOPPING=1 at SIGTERM
(sent with systemd-notify; see controller/systemd/acetate.service).

For tests only, environment variables shorten the back-offs:
  ACETATE_CRASHLOOP_BASE_MS, ACETATE_CRASHLOOP_MAX_MS, ACETATE_CRASHLOOP_RESET_MS,
  ACETATE_BACKOFF_BASE_MS, ACETATE_BACKOFF_MAX_MS.`,
  async run(argv, ctx) {
    const { runController } = await import('./run-controller.js');
    return runController(argv, ctx);
  },
};
