// Lives in bench/lib/registry.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/registry.js';
