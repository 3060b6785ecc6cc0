/**
 * runtime — changes made while running (`fulcrum adm`, the HTTP API) as a keyed overlay
 * on the configuration file: recorded by identity, saved before they apply, laid over the
 * file on every reload (overlay.ts, pure); kept in a JSON file or memory (store.ts).
 */
export {
  applyOverlay, changesTable, describeOverlay, EMPTY_OVERLAY, ipvsView, OverlayRecorder, recordCommand,
  type DrainEntry, type OverlayResult, type RecordOutcome, type RuntimeOverlay, type ServerEntry, type ServiceEntry,
} from './overlay.js';
export { FileRuntimeStore, MemoryRuntimeStore, parseOverlay, RuntimeErrorCode, type RuntimeStore } from './store.js';
