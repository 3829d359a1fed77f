/**
 * Preloaded into the acetate CLI by the benchmarks (`node --import .../cpu-report.js`): at exit,
 * writes the process's own CPU time (user and system, µs) to $ACETATE_BENCH_CPU_FILE.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.ACETATE_BENCH_CPU_FILE;
if (file) {
  process.on('exit', () => {
    const u = process.cpuUsage();
    try {
      writeFileSync(file, JSON.stringify({ user: u.user, system: u.system, maxRssKiB: process.resourceUsage().maxRSS }));
    } catch {
      /* best effort */
    }
  });
}
