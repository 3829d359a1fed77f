/**
 * js-yaml, loaded at its first use. Requiring it costs ~20 ms of a command's start on the test node,
 * and a `plan` or `get` whose manifests are all in the parsed-file cache parses no YAML at all.
 */
import { createRequire } from 'node:module';
import type * as JsYaml from 'js-yaml';

const require = createRequire(import.meta.url);
let loaded: typeof JsYaml | undefined;

export function jsYaml(): typeof JsYaml {
  loaded ??= require('js-yaml') as typeof JsYaml;
  return loaded;
}
