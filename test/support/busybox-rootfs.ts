// Lives in bench/lib/busybox-rootfs.ts: the benchmarks use it too, and bench must not import test code.
export * from '../../bench/lib/busybox-rootfs.js';
