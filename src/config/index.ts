/**
 * config — every way a configuration enters Fulcrum, validated into the shared model.
 *
 * - keepalived.conf (`loadKeepalivedConfig`, `parseKeepalivedText`): the real grammar
 *   with includes, conditionals, parameters and generators; keepalived's defaults.
 * - ipvsadm command lines and `-S` save files (`parseIpvsadmRules`, `parseIpvsadmLine`):
 *   ipvsadm's defaults, messages and table semantics.
 *
 * Nothing here throws on bad input: results carry located diagnostics and `ok`.
 */
export * from './keepalived/index.js';
export * from './ipvsadm/index.js';
export * from './loader.js';
