/** Loads the Container CRD shipped in crds/, whose openAPIV3Schema is the one source of validation. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { jsYaml } from '../util/lazy-yaml.js';
import { PACKAGE_ROOT } from '../util/package-root.js';

export const CRD_PATH = path.join(PACKAGE_ROOT, 'crds', 'containers.acetate.dev.yaml');

export interface Crd {
  spec: { versions: { name: string; schema: { openAPIV3Schema: Record<string, unknown> } }[] };
}

let cached: Crd | undefined;

export function loadCrd(): Crd {
  if (!cached) {
    try {
      cached = jsYaml().load(readFileSync(CRD_PATH, 'utf8')) as Crd;
    } catch (err) {
      throw new Error(`cannot read the Container CRD at ${CRD_PATH}`, { cause: err });
    }
  }
  return cached;
}

export function containerSchema(version = 'v1alpha1'): Record<string, unknown> {
  const v = loadCrd().spec.versions.find((x) => x.name === version);
  if (!v) throw new Error(`CRD has no version ${version}`);
  return v.schema.openAPIV3Schema;
}
