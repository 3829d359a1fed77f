// Lives in bench/lib/oci-image.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/oci-image.js';
