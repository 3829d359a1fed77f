/**
 * How the API server is asked for this node's Containers only.
 *
 * - field: `fieldSelector=spec.nodeName=NODE`. Needs the CRD's `selectableFields` (beta and on by
 *   default since Kubernetes 1.31, GA in 1.32). Older servers answer 400 "field label not
 *   supported: spec.nodeName".
 * - label: `labelSelector=acetate.dev/node=NODE`, for older clusters: users must label their
 *   Containers (`kubectl label container NAME acetate.dev/node=NODE`); spec.nodeName still decides,
 *   the label only narrows what the server sends. Label values are at most 63 characters.
 * - auto (default): field, and on a 400 for the field selector, label (logged once, loudly).
 */
import { KubeApiError, type ContainerList, type KubeApi, type Selector } from './client.js';
import type { Logger } from '../../contracts/logger.js';
import { NODE_FIELD, NODE_LABEL } from './constants.js';

export type SelectorMode = 'auto' | 'field' | 'label';
export type EffectiveSelector = 'field' | 'label';

export function selectorFor(mode: EffectiveSelector, node: string): Selector {
  return mode === 'field' ? { fieldSelector: `${NODE_FIELD}=${node}` } : { labelSelector: `${NODE_LABEL}=${node}` };
}

/** The server rejected the field selector: no selectableFields for spec.nodeName (Kubernetes < 1.31). */
export function isFieldSelectorUnsupported(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 400;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Why the node name cannot be a label value, or undefined when it can. */
export function labelValueProblem(node: string): string | undefined {
  if (node.length > 63) return `node name '${node}' is longer than 63 characters and cannot be the value of label ${NODE_LABEL}`;
  if (!LABEL_VALUE.test(node)) return `node name '${node}' is not a valid label value`;
  return undefined;
}

export function describeSelector(mode: EffectiveSelector, node: string): string {
  const s = selectorFor(mode, node);
  return mode === 'field' ? `field selector ${s.fieldSelector}` : `label selector ${s.labelSelector}`;
}

/**
 * Lists this node's Containers with the selector in use; in auto mode, before a selector was
 * settled on, a 400 for the field selector falls back to the label selector (logged loudly).
 */
export async function listForNode(o: {
  api: KubeApi;
  node: string;
  mode: SelectorMode;
  effective: EffectiveSelector | undefined;
  logger: Logger;
}): Promise<{ res: ContainerList; mode: EffectiveSelector }> {
  const mode: EffectiveSelector = o.effective ?? 'field';
  try {
    return { res: await o.api.listContainers(selectorFor(mode, o.node)), mode };
  } catch (err) {
    if (!(o.mode === 'auto' && o.effective === undefined && mode === 'field' && isFieldSelectorUnsupported(err))) throw err;
    const p = labelValueProblem(o.node);
    if (p) throw new KubeApiError(400, 'BadRequest', `the API server rejects the field selector (${(err as Error).message}) and ${p}`);
    o.logger.warn(
      `the API server does not support the field selector spec.nodeName (${(err as Error).message}): it is older than Kubernetes 1.31 or the CRD lacks selectableFields. Falling back to ${describeSelector('label', o.node)}: only Containers carrying that label are seen on this node`,
    );
    return { res: await o.api.listContainers(selectorFor('label', o.node)), mode: 'label' };
  }
}
