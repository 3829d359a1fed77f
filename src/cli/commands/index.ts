/**
 * The commands, by name, each loaded only when it runs: `acetate get` then loads what get needs,
 * not what apply, run, exec or image do (loading every command's module graph cost ~300 ms of a
 * 400 ms `acetate --version`). The summaries are for the global help; a unit test keeps them equal
 * to the commands' own.
 */
import type { Command } from '../command.js';

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: CommandEntry[] = [
  {
    name: 'validate',
    summary: 'Check Container manifests against the CRD schema',
    load: async () => (await import('./validate.js')).validateCommand,
  },
  { name: 'plan', summary: 'Show what apply would change, and why (changes nothing)', load: async () => (await import('./plan.js')).planCommand },
  { name: 'apply', summary: 'Converge this node to the Containers declared in a directory', load: async () => (await import('./apply.js')).applyCommand },
  {
    name: 'run',
    summary: 'Keep this node converged to a manifest directory (watch, reconcile, restart)',
    load: async () => (await import('./run.js')).runCommand,
  },
  { name: 'get', summary: 'List the containers acetate manages on this node', load: async () => (await import('./get.js')).getCommand },
  {
    name: 'describe',
    summary: 'Show status, conditions, last error and source of one container',
    load: async () => (await import('./describe.js')).describeCommand,
  },
  { name: 'logs', summary: "Print a container's output (stdout and stderr)", load: async () => (await import('./logs.js')).logsCommand },
  {
    name: 'exec',
    summary: 'Run a command in a running container (its namespaces and cgroup)',
    load: async () => (await import('./exec.js')).execCommand,
  },
  { name: 'template', summary: 'Manage base OS templates (import, list, rm)', load: async () => (await import('./template.js')).templateCommand },
  {
    name: 'image',
    summary: 'Manage OCI images used as templates (list, pull, import, rm, prune)',
    load: async () => (await import('./image.js')).imageCommand,
  },
  {
    name: 'shutdown',
    summary: 'Stop every running container gracefully (at system shutdown); they start again with the next run',
    load: async () => (await import('./shutdown.js')).shutdownCommand,
  },
];
