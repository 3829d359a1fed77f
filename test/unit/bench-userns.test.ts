import assert from 'node:assert/strict';
import { DENSITY_END, DENSITY_START, spliceDensity } from '../../bench/lib/density-report.js';
import { parseBenchArgs } from '../../bench/lib/options.js';
import { spliceBlock, usernsMarkdown, usernsTargets, USERNS_END, USERNS_START, type UsernsResults } from '../../bench/lib/userns-report.js';

const results = (bare: number, acetate: number): UsernsResults => ({
  startedAt: '2026-12-06T15:00:00.000Z',
  n: 100,
  reps: 2,
  concurrency: 4,
  loadAvgStart: [9.5, 8, 7],
  loadAvgEnd: [9, 8, 7],
  kinds: [
    { kind: 'host template', layers: 1, bareMs: [bare, bare], acetateMs: [acetate, acetate], bareCpuMs: [1], acetateCpuMs: [1], ratio: acetate / bare },
    {
      kind: 'image (5 layers)',
      layers: 5,
      bareMs: [bare],
      acetateMs: [bare],
      bareCpuMs: [1],
      acetateCpuMs: [1],
      ratio: 1,
      imageLayersBytes: 10 * 2 ** 20,
      layerEntriesNotRoot: 0,
    },
  ],
});

describe('bench: unprivileged create (issue 23)', () => {
  it('is part of the normal run and of --only userns, its N the first of --sizes', () => {
    const base = { env: {}, packageRoot: '/p' };
    assert.ok(parseBenchArgs([], base).only.has('userns'));
    const only = parseBenchArgs(['--only', 'userns', '--sizes', '20'], base);
    assert.deepEqual([...only.only], ['userns']);
    assert.deepEqual(only.sizes, [20]);
  });

  it('marks the 1.1× target met or not met per kind, and says so in the table', () => {
    const r = results(10_000, 12_000);
    assert.deepEqual(
      usernsTargets(r).map((t) => [t.measured, t.met]),
      [
        ['1.20×', false],
        ['1.00×', true],
      ],
    );
    const md = usernsMarkdown(r);
    assert.match(md, /host template .* 1\.20× \| ≤ 1\.1× NOT MET \|/);
    assert.match(md, /image \(5 layers\) .* 1\.00× \| ≤ 1\.1× met \|/);
    assert.match(md, /load average 9\.5, 8, 7 at the start/);
    assert.match(md, /The image's 5 layers: 10 MiB once for all 100 containers .* not owned by root: 0/);
  });

  it('splices its table into results.md once, next to the density table, replacing an earlier one', () => {
    const withDensity = spliceDensity('# results\n', 'D\n');
    const once = spliceBlock(withDensity, 'A\n', USERNS_START, USERNS_END);
    const twice = spliceBlock(once, 'B\n', USERNS_START, USERNS_END);
    assert.equal(twice, `# results\n\n${DENSITY_START}\nD\n${DENSITY_END}\n\n${USERNS_START}\nB\n${USERNS_END}\n`);
  });
});
