/** `acetate run`: the continuous reconcile loop over a manifest directory (and/or Kubernetes). */
import type { CliContext } from '../command.js';
import { print, UsageError } from '../command.js';
import { parse, parseDuration, parsePositiveInt } from '../args.js';
import { commandLine, manifestCacheOf, nodeName } from '../converge-input.js';
import { manifestFingerprint } from '../../sources/files/manifest-cache-file.js';
import { plan } from '../../plan/plan.js';
import { executeAction } from '../../apply/execute.js';
import { messageOf } from '../../contracts/errors.js';
import { Controller } from '../../controller/loop.js';
import { StatusStore } from '../../controller/status-store.js';
import { ObservedContainers } from '../../controller/observed.js';
import { serveView, type ViewServer } from '../../controller/view-socket.js';
import { loopPlanner } from '../loop-planner.js';
import { realClock } from '../../contracts/clock.js';
import { FileSource } from '../../sources/files/watch.js';
import { hostPathRulesOf, nodeCapacity } from '../node-capacity.js';
import { formatProblem } from '../problems.js';
import { gitSourceFromFlags } from '../git-flags.js';
import type { SourceSyncState } from '../../contracts/source.js';
import { GIT_OPTIONS } from '../git-usage.js';
import type { KubeSource, SelectorMode } from '../../sources/kube/index.js';
import { createLogger, type LogLevel } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { DEFAULT_METRICS_ADDR, parseListenAddress, startMetricsServer, type MetricsServer } from '../../observability/http.js';
import { SystemdNotifier, takeNotifySettings } from '../../observability/sd-notify.js';

/** What POST /sync answers: the commit applied, or the failure (the last good commit is kept). */
function syncOutcome(s: SourceSyncState): string {
  if (s.lastError) throw new Error(`sync failed: ${s.lastError.message}`);
  return `synced: commit ${s.revision ?? 'none'}`;
}

/** Test-only knobs, read from the environment (not flags: users should not need them). */
function envMs(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name}: '${v}' is not a number of milliseconds`);
  return n;
}

/** `acetate run`'s work, loaded only by that command: the controller, the file watcher, logging and metrics (winston, prom-client) cost the other commands ~55 ms of start-up. */
export async function runController(argv: string[], ctx: CliContext): Promise<number> {
  // First, before any child is spawned: no runc or probe may inherit $NOTIFY_SOCKET.
  const notifySettings = takeNotifySettings();
  const { values, positionals } = parse(argv, {
    file: { type: 'string', short: 'f' },
    concurrency: { type: 'string', default: '4' },
    resync: { type: 'string', default: '5m' },
    relist: { type: 'string', default: '5m' },
    debounce: { type: 'string', default: '100ms' },
    'process-poll': { type: 'string', default: '2s' },
    'metrics-addr': { type: 'string', default: DEFAULT_METRICS_ADDR },
    'allow-empty': { type: 'boolean' },
    kube: { type: 'boolean' },
    kubeconfig: { type: 'string' },
    'kube-selector': { type: 'string', default: 'auto' },
    node: { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    'log-format': { type: 'string' },
    wait: { type: 'boolean' },
    ...GIT_OPTIONS,
    interval: { type: 'string' },
  });
  if (positionals.length) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (!values.file && !values.kube && !values.git) throw new UsageError('run needs -f DIR, --git URL and/or --kube');
  if (values.interval !== undefined && !values.git) throw new UsageError('--interval needs --git URL');
  const selector = values['kube-selector'] as SelectorMode;
  if (!['auto', 'field', 'label'].includes(selector)) throw new UsageError(`--kube-selector must be auto, field or label, not '${selector}'`);
  const concurrency = parsePositiveInt(values.concurrency, '--concurrency');
  const resyncMs = parseDuration(values.resync, '--resync');
  const relistMs = parseDuration(values.relist, '--relist');
  const debounceMs = parseDuration(values.debounce, '--debounce');
  const processPollMs = parseDuration(values['process-poll'], '--process-poll');
  let listen;
  try {
    listen = parseListenAddress(values['metrics-addr']);
  } catch (err) {
    throw new UsageError(`--metrics-addr: ${messageOf(err)}`);
  }
  const level = values['log-level'];
  if (!['error', 'warn', 'info', 'debug'].includes(level)) throw new UsageError(`--log-level must be error, warn, info or debug, not '${level}'`);
  const format = values['log-format'];
  if (format !== undefined && format !== 'json' && format !== 'text') throw new UsageError(`--log-format must be json or text, not '${format}'`);
  const crashLoop = {
    baseMs: envMs('ACETATE_CRASHLOOP_BASE_MS'),
    maxMs: envMs('ACETATE_CRASHLOOP_MAX_MS'),
    resetAfterMs: envMs('ACETATE_CRASHLOOP_RESET_MS'),
  };
  const backoff = { baseMs: envMs('ACETATE_BACKOFF_BASE_MS'), maxMs: envMs('ACETATE_BACKOFF_MAX_MS') };

  const logger = createLogger({ level: level as LogLevel, ...(format ? { json: format === 'json' } : {}) });
  const node = nodeName(values.node);
  // Under a Type=notify unit (controller/systemd/acetate.service): READY=1, STATUS=, WATCHDOG=1, STOPPING=1.
  const loop: { controller?: Controller } = {}; // set once the loop is built, below
  const notifier =
    notifySettings &&
    new SystemdNotifier({
      settings: notifySettings,
      // Before the loop exists acetate is starting (taking the node lock, opening the runtime):
      // alive; from then on, what /healthz answers.
      healthy: () => loop.controller?.healthy() ?? true,
      onError: (message) => logger.warn(message),
    });
  const declared = (): string => {
    const n = loop.controller?.snapshot().containers.size ?? 0;
    return `${n} container${n === 1 ? '' : 's'} declared`;
  };
  void notifier?.status('starting: taking the node lock');
  notifier?.startWatchdog();

  // The node lock, for the life of the loop: a second `run`, or an `apply` next to it, exits 1
  // naming this process (or waits, with --wait). It replaces the earlier check of controller.json.
  try {
    await ctx.lockNode({ wait: !!values.wait, command: commandLine() });
  } catch (err) {
    if ((err as Error).name !== 'NodeLockBusyError') throw err;
    ctx.stderr.write(`acetate: ${messageOf(err)}\n`); // one line, as apply prints it
    return 1;
  }
  const { runtime } = await ctx.openRuntime();
  // Loop devices and mounts a killed acetate left, ranges an earlier one did not claim.
  for (const w of (await runtime.sweepLeftovers?.()) ?? []) print(ctx.stderr, `acetate: warning: ${w}`);
  const store = new StatusStore(ctx.stateDir);
  const metrics = new Metrics();
  let kube: KubeSource | undefined;
  let capacity: ReturnType<typeof nodeCapacity>;
  try {
    capacity = nodeCapacity(); // with the security levels: a setting that cannot be read stops the start
    if (values.kube) {
      // Loaded only in Kubernetes mode: the client costs ~80 MiB and ~0.4 s of start-up.
      const { createKubeSource } = await import('../../sources/kube/index.js');
      kube = createKubeSource({ node, kubeconfig: values.kubeconfig, selector, logger, capacity });
    }
  } catch (err) {
    logger.error(messageOf(err));
    return 1;
  }
  // Every start checks where each hostPath leads then, by the level the namespace has then.
  if (capacity.security) runtime.setHostPathRules?.(kube?.hostPathRules(capacity.security) ?? hostPathRulesOf(capacity.security));
  const fingerprint = manifestFingerprint({ nodeName: node, capacity });
  const source =
    values.file === undefined
      ? undefined
      : new FileSource({
          dir: values.file,
          allowEmpty: !!values['allow-empty'],
          nodeName: node,
          debounceMs,
          relistMs,
          onError: (err) => logger.warn('manifest watcher error', { error: err.message }),
          capacity,
          onWarning: (w) => logger.warn(`skipped: ${formatProblem(w)}`, { file: w.origin, line: w.line }),
          // Left for `acetate plan` after each full read (this process holds the node lock).
          ...(ctx.runDir ? { persistedCache: { ...manifestCacheOf(ctx.runDir, true), fingerprint } } : {}),
        });
  const git = gitSourceFromFlags(values, {
    stateDir: ctx.stateDir,
    node,
    allowEmpty: !!values['allow-empty'],
    capacity,
    logger,
    onRevision: (revision) => {
      metrics.sourceRevision.reset();
      metrics.sourceRevision.set({ source: git!.name, revision }, 1);
    },
    onWarning: (w) => logger.warn(`skipped: ${formatProblem(w)}`, { file: w.origin, line: w.line }),
  });
  // What the loop reads of its containers, served to `get` and `plan` beside it (view-socket.ts).
  const observed = new ObservedContainers();
  const controller = new Controller({
    runtime,
    observed,
    sources: [...(source ? [source] : []), ...(git ? [git] : []), ...(kube ? [kube] : [])],
    statusSinks: kube?.sinks(),
    recorders: kube?.recorders(),
    plan,
    execute: executeAction,
    concurrency,
    resyncMs,
    processPollMs,
    statusStore: store,
    logger,
    metrics,
    nodeName: node,
    crashLoop: Object.fromEntries(Object.entries(crashLoop).filter(([, v]) => v !== undefined)),
    backoff: Object.fromEntries(Object.entries(backoff).filter(([, v]) => v !== undefined)),
    onReady: () => void notifier?.ready(`ready: ${declared()}, first sync done`),
  });
  loop.controller = controller;

  let server: MetricsServer | undefined;
  if (listen) {
    try {
      server = await startMetricsServer(listen, metrics, {
        healthy: () => controller.healthy(),
        ready: () => controller.ready(),
        ...(git ? { sync: () => git.syncNow().then(() => syncOutcome(git.state())) } : {}),
      });
    } catch (err) {
      logger.error(`cannot listen on ${values['metrics-addr']}: ${messageOf(err)}`);
      return 1;
    }
    logger.info(`metrics listening on ${server.url}`, { metricsUrl: server.url });
  }
  const startedAt = new Date().toISOString();
  const writeRecord = (extra: { stoppedAt?: string } = {}): Promise<void> =>
    store
      .writeController({
        pid: process.pid,
        startedAt,
        ...(server ? { metricsUrl: server.url } : {}),
        sources: [...(source ? [source.name] : []), ...(git ? [git.name] : []), ...(kube ? [kube.name] : [])],
        ...(git ? { syncs: [git.state()] } : {}),
        ready: controller.ready(),
        ...extra,
      })
      .catch((err: unknown) => {
        logger.warn('cannot write controller status', { error: messageOf(err) });
      });

  let view: ViewServer | undefined; // served once the loop started (below)
  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let signals = 0;
  const timers: { record?: NodeJS.Timeout } = {};
  const shutdown = async (why: string): Promise<void> => {
    signals++;
    if (signals > 1) {
      logger.warn(`${why} again: exiting without waiting for in-flight actions`);
      process.exit(1);
    }
    logger.info(`${why}: shutting down (containers keep running)`);
    const stopping = notifier?.stopping('stopping: finishing in-flight actions (containers keep running)');
    if (timers.record) clearInterval(timers.record);
    await view?.close(); // first: from now on get and plan read the node
    try {
      await controller.stop();
    } catch (err) {
      logger.error('error while stopping', { error: messageOf(err) });
    }
    await server?.close();
    await writeRecord({ stoppedAt: new Date().toISOString() });
    await stopping;
    logger.info('bye');
    // Safety net: nothing should keep the process alive now; if something does, leave anyway.
    setTimeout(() => process.exit(0), 3000).unref();
    resolveDone(0);
  };
  const onTerm = (): void => void shutdown('SIGTERM');
  const onInt = (): void => void shutdown('SIGINT');
  const onHup = (): void => {
    logger.info(`SIGHUP: re-reading ${[...(source ? ['the manifest directory'] : []), ...(git ? ['fetching the Git source'] : [])].join(', ') || 'nothing'}`);
    void source?.relist();
    void git?.syncNow();
  };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);

  void notifier?.status('starting: first sync');
  try {
    await controller.start();
  } catch (err) {
    logger.error(`cannot start the loop: ${messageOf(err)}`);
    await controller.stop().catch(() => undefined);
    await server?.close();
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    return 1;
  }
  // After the start (/healthz answers from then on): the view is whole only after the first sync anyway.
  if (ctx.runDir && signals === 0) {
    const seen = { containers: () => observed.containers(), records: () => store.all(), generation: () => `${observed.generation}:${store.generation}` };
    // With one source, a directory: `acetate plan -f` of it is planned here (loop-planner.ts).
    const planner =
      source && !git && !kube
        ? loopPlanner({
            source,
            allowEmpty: !!values['allow-empty'],
            fingerprint,
            ...seen,
            clock: realClock,
            onAnswer: (answer, why) => {
              metrics.plansForAskers.inc({ answer });
              if (answer === 'failed') logger.warn(`cannot plan for acetate plan: ${why}`);
              else if (why) logger.debug(`acetate plan not planned here (it plans itself): ${why}`);
            },
          })
        : undefined;
    view = await serveView(ctx.runDir, ctx.stateDir, seen, planner).catch((err: unknown) => {
      logger.warn(`get and plan will read the node themselves: ${messageOf(err)}`);
      return undefined;
    });
  }
  await writeRecord();
  timers.record = setInterval(() => {
    void writeRecord();
    if (controller.ready()) void notifier?.status(`running: ${declared()}`);
  }, 1000);
  timers.record.unref();
  const code = await done;
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onInt);
  process.off('SIGHUP', onHup);
  return code;
}
