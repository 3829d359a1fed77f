/** NormalizedSpec fixtures for runtime tests. */
import type { NormalizedSpec } from '../../src/api/types.js';
import type { Runtime } from '../../src/runtime/runtime.js';

export function testSpec(overrides: Partial<NormalizedSpec> = {}): NormalizedSpec {
  return {
    template: 'host',
    command: ['sleep', '1000'],
    args: [],
    env: [],
    workingDir: '/',
    hostname: '',
    state: 'Running',
    resources: {},
    resizePolicy: { cpu: 'NotRequired', memory: 'NotRequired', pids: 'NotRequired' },
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 1,
    mounts: [],
    network: 'none',
    security: { privileged: false, noNewPrivileges: true, capAdd: [], capDrop: [] },
    ...overrides,
  };
}

export const FILE_SOURCE = { kind: 'file' as const, file: '/test/containers.yaml', line: 1 };

/** Creates default/<name> on the runtime from testSpec(spec), declared in FILE_SOURCE. */
export function createTestContainer(runtime: Runtime, name: string, spec: Partial<NormalizedSpec> = {}): ReturnType<Runtime['create']> {
  return runtime.create({ namespace: 'default', name, spec: testSpec(spec), source: FILE_SOURCE });
}
