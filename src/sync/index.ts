export * from './codec.js';
export * from './engine.js';
export * from './translate.js';
export * from './daemon.js';
