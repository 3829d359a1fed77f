// Lives in bench/lib/leaks.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/leaks.js';
