/** What id-alloc-worker.ts processes printed: one JSON line per container given a range. */
export interface Allocation {
  container: string;
  range: { hostID: number };
}

/** Every allocation the workers printed, in their order. */
export function allocationsOf(outs: readonly { stdout: string }[]): Allocation[] {
  return outs.flatMap((o) =>
    o.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Allocation),
  );
}
