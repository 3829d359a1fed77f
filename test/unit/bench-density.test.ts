import assert from 'node:assert/strict';
import { templateOf, PROBE_NAME } from '../../bench/lib/acetate-config.js';
import { densityMode, densityTargets, spliceDensity, DENSITY_START, DENSITY_END, type DensityResults } from '../../bench/lib/density-report.js';
import { parseBenchArgs, DEFAULT_DENSITY, QUICK_DENSITY } from '../../bench/lib/options.js';

describe('bench: density (issue 25)', () => {
  it("turns acetate's config of the probe container into the bare loop's template, nothing of the scratch instance left", () => {
    const dir = `/var/lib/acetate-bench/acetate-bench-s-x1/containers/default_${PROBE_NAME}`;
    const raw = JSON.stringify({
      root: { path: `${dir}/rootfs` },
      hostname: PROBE_NAME,
      mounts: [
        { destination: '/', type: 'overlay', source: 'overlay', options: ['lowerdir=/', `upperdir=${dir}/upper`, `workdir=${dir}/work`] },
        { destination: '/var/lib/acetate-bench/acetate-bench-s-x1', type: 'tmpfs' },
        { destination: '/run/acetate-bench-r-y2', type: 'tmpfs' },
      ],
      annotations: { 'acetate.dev/name': PROBE_NAME },
      linux: { cgroupsPath: `/acetate-12345678/default_${PROBE_NAME}` },
    });
    const t = templateOf(raw, {
      containerDir: dir,
      id: `default_${PROBE_NAME}`,
      stateDir: '/var/lib/acetate-bench/acetate-bench-s-x1',
      runDir: '/run/acetate-bench-r-y2',
    });
    const cfg = JSON.parse(t) as {
      root: { path: string };
      hostname: string;
      mounts: { destination: string; options?: string[] }[];
      linux: { cgroupsPath: string };
    };
    assert.equal(cfg.root.path, '@DIR@/rootfs');
    assert.equal(cfg.hostname, '@ID@');
    assert.deepEqual(cfg.mounts[0]!.options, ['lowerdir=/', 'upperdir=@DIR@/upper', 'workdir=@DIR@/work']);
    assert.deepEqual(
      cfg.mounts.slice(1).map((m) => m.destination),
      ['@STATE@', '@RUN@'],
    );
    assert.equal(cfg.linux.cgroupsPath, '/@PARENT@/@ID@');
    assert.doesNotMatch(t, /acetate-bench-s-|acetate-bench-r-|acetate-12345678|zbenchprobe/);
  });

  it('--density N runs the density section alone; the normal run measures it at the default size', () => {
    const base = { env: {}, packageRoot: '/p' };
    const d = parseBenchArgs(['--density', '2500'], base);
    assert.deepEqual([...d.only], ['density']);
    assert.equal(d.density, 2500);
    const normal = parseBenchArgs([], base);
    assert.ok(normal.only.has('density') && normal.only.has('create'));
    assert.equal(normal.density, DEFAULT_DENSITY);
    assert.equal(parseBenchArgs(['--quick'], base).density, QUICK_DENSITY);
    assert.throws(() => parseBenchArgs(['--density', 'many'], base), /--density: expected a number/);
    assert.throws(() => parseBenchArgs(['--density', '10', '--only', 'create'], base), /alone/);
  });

  it("measures the default (user namespaces) unless --density-host-users asks for the node's ids, and says which", () => {
    const base = { env: {}, packageRoot: '/p' };
    assert.equal(parseBenchArgs(['--density', '20'], base).densityHostUsers, false);
    assert.equal(parseBenchArgs(['--density', '20', '--density-host-users'], base).densityHostUsers, true);
    assert.equal(parseBenchArgs(['--only', 'density', '--density-host-users'], base).densityHostUsers, true);
    assert.throws(() => parseBenchArgs(['--only', 'create', '--density-host-users'], base), /--density-host-users: the density benchmark is not measured/);
    assert.match(densityMode({ userNamespaces: true }), /user namespace per container.*create-idmap\.sh/);
    assert.match(densityMode({ userNamespaces: false }), /ACETATE_HOST_USERS=true.*create\.sh/);
  });

  it('marks the targets met or not met from what was measured', () => {
    const r = {
      n: 2500,
      creates: [
        { variant: 'bare loop', n: 100, concurrency: 1, createMs: 6_300, cpuMs: 0 },
        { variant: 'acetate', n: 100, concurrency: 1, createMs: 9_000, cpuMs: 0 },
        { variant: 'bare loop', n: 100, concurrency: 8, createMs: 3_000, cpuMs: 0 },
        { variant: 'acetate', n: 100, concurrency: 8, createMs: 3_000, cpuMs: 0 },
      ],
      loop: { windowS: 60, cpuMsPerSecond: 8.5, firstMinuteCpuMsPerSecond: 12.5, rssBytes: 160e6, rssMaxBytes: 161e6 },
      getMs: 250,
      planMs: 1_500,
      getPlanDirect: { getMs: 700, getCpuMs: 800, planMs: 900, planCpuMs: 300 },
    } as unknown as DensityResults;
    const met = Object.fromEntries(densityTargets(r).map((t) => [t.what.split(',')[0], t.met]));
    assert.deepEqual(
      densityTargets(r)
        .filter((t) => t.what.startsWith('create'))
        .map((t) => [t.measured, t.met]),
      [
        ['1.43×', false],
        ['0.48×', true],
        ['1×', undefined],
      ],
    );
    assert.equal(met['acetate run CPU at steady state'], true, 'the steady window, with its resync spread over the period, is what the target is checked on');
    const steady = densityTargets(r).find((t) => t.what.startsWith('acetate run CPU at steady state'));
    assert.match(steady!.measured, /^8\.5 ms\/s between resyncs; at most 9\.5 ms\/s with its resync every 5 min/);
    const costlyResync = { ...r, getPlanDirect: { ...r.getPlanDirect!, planCpuMs: 1_040 } };
    assert.equal(densityTargets(costlyResync).find((t) => t.what.startsWith('acetate run CPU at steady state'))?.met, false, '8.5 + 3.5 ms/s: not met');
    const before = densityTargets(r).find((t) => t.what.startsWith('acetate run CPU in the window before'));
    assert.deepEqual([before?.measured, before?.met], ['12.5 ms/s', undefined], 'the window before is shown, not judged');
    assert.equal(met['acetate run RSS'], false);
    assert.equal(met['acetate get'], true);
    assert.equal(met['no-op acetate plan'], false);
  });

  it('splices its table into results.md once, replacing an earlier one', () => {
    const once = spliceDensity('# results\n\ntable\n', 'A\n');
    assert.equal(once, `# results\n\ntable\n\n${DENSITY_START}\nA\n${DENSITY_END}\n`);
    const twice = spliceDensity(once, 'B\n');
    assert.equal(twice, `# results\n\ntable\n\n${DENSITY_START}\nB\n${DENSITY_END}\n`);
  });
});
