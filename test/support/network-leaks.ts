// Lives in bench/lib/network-leaks.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/network-leaks.js';
