/** The capabilities a container gets: Docker's rules over the default set (api/capabilities.ts), every name checked. */
import { ALL_CAPABILITIES, capabilityName, capabilitySet } from '../../api/capabilities.js';
import type { NormalizedSpec } from '../../api/types.js';
import { OciConfigError } from './errors.js';

function capName(raw: string): string {
  const name = capabilityName(raw.trim());
  if (name === 'ALL') return name;
  if (!ALL_CAPABILITIES.includes(name)) throw new OciConfigError(`unknown capability '${raw}'`);
  return name;
}

/** The container's capabilities (capabilitySet), every name checked: an unknown one is an OciConfigError. */
export function resolveCapabilities(security: NormalizedSpec['security']): string[] {
  return capabilitySet({ ...security, capAdd: security.capAdd.map(capName), capDrop: security.capDrop.map(capName) });
}
