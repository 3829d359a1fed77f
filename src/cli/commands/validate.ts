import path from 'node:path';
import { promises as fs } from 'node:fs';
import type { Command } from '../command.js';
import { print, UsageError } from '../command.js';
import { parse } from '../args.js';
import { listManifestFiles, loadManifestFile, mergeFileResults } from '../../sources/files/load.js';
import { printProblems, printWarnings } from '../problems.js';
import { nodeCapacity } from '../node-capacity.js';

export const validateCommand: Command = {
  name: 'validate',
  summary: 'Check Container manifests against the CRD schema',
  usage: `Usage: acetate validate PATH...

Checks every manifest file (.yaml, .yml, .json; multi-document files too) under each PATH
against the Container CRD's schema, and that this node can give what they ask. Every error
names the file, line and field (after 20 per file, the rest is counted). Containers inside a
\`kind: List\` or \`ContainerList\` (items) count; documents of other kinds, and files that are
not regular files (a FIFO), are skipped with a warning.
Exit status: 0 all valid, 1 any error.`,
  async run(argv, ctx) {
    const { positionals } = parse(argv, {});
    if (!positionals.length) throw new UsageError('validate needs at least one PATH');
    const results = [];
    const capacity = nodeCapacity();
    const dirProblems = [];
    const dirWarnings = [];
    for (const p of positionals) {
      const abs = path.resolve(p);
      let isDir: boolean;
      try {
        isDir = (await fs.stat(abs)).isDirectory();
      } catch (err) {
        dirProblems.push({
          origin: abs,
          kind: 'unreadable' as const,
          keys: [],
          message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        });
        continue;
      }
      const files = isDir ? await listManifestFiles(abs) : { files: [abs], problems: [], warnings: [], rootReal: undefined };
      dirProblems.push(...files.problems);
      dirWarnings.push(...files.warnings);
      results.push(
        ...(await Promise.all(files.files.map((f) => loadManifestFile(f, { capacity, ...(files.rootReal !== undefined ? { within: files.rootReal } : {}) })))),
      );
    }
    const snap = mergeFileResults(results, { dirProblems });
    printWarnings(ctx.stderr, [...dirWarnings, ...snap.warnings]);
    printProblems(ctx.stderr, snap.problems);
    const docs = results.reduce((n, r) => n + r.containers.length, 0);
    if (snap.problems.length) {
      print(ctx.stderr, `${snap.problems.length} error(s) in ${new Set(snap.problems.map((p) => p.origin)).size} file(s); ${docs} valid Container(s).`);
      return 1;
    }
    print(ctx.stdout, `${docs} Container(s) valid in ${results.length} file(s).`);
    return 0;
  },
};
