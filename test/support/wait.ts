// Lives in bench/lib/wait.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/wait.js';
