// Lives in bench/lib/five-layer-image.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/five-layer-image.js';
