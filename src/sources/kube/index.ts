/** acetate's Kubernetes mode: the Container objects of this node as a DesiredSource, with write-back. */
export { createKubeSource, KubeSource, type KubeSourceOptions } from './source.js';
export { createKubeApi, KubeApiError, type KubeApi, type KubeContainer, type Selector } from './client.js';
export { loadKubeConfig, resolveNodeName, KubeConfigError, type LoadKubeConfigOptions } from './config.js';
export { ContainerInformer } from './informer.js';
export type { InformerEvent, InformerOptions } from './informer-types.js';
export { convertObject, detectNodeCapacity, type Conversion, type NodeCapacity } from './desired.js';
export { KubeStatusWriter } from './status-writer.js';
export { KubeEventRecorder } from './events.js';
export { FinalizerWriter, hasFinalizer } from './finalizer.js';
export { type SelectorMode } from './node-selector.js';
export { FINALIZER, NODE_LABEL, NODE_FIELD, GROUP, VERSION, PLURAL } from './constants.js';
export { silentLogger, MemoryLogger, type Logger } from '../../contracts/logger.js';
