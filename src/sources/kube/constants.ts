/** Names shared by acetate's Kubernetes integration (API coordinates, finalizer, label, manager). */

export const GROUP = 'acetate.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'Container';
export const PLURAL = 'containers';

/** Finalizer acetate puts on every Container its node takes; removed once the container is gone. */
export const FINALIZER = 'acetate.dev/cleanup';

/** Label naming a Container's node, for clusters without CRD selectableFields (Kubernetes < 1.31). */
export const NODE_LABEL = 'acetate.dev/node';

/** The field the server-side selector filters on (the CRD lists it in selectableFields). */
export const NODE_FIELD = 'spec.nodeName';

/** Field manager / event reporting component. */
export const COMPONENT = 'acetate';
