/** Live labs: a scenario built on this machine out of network namespaces, veths, a bridge and tc. */
export * from './plan.js';
export * from './host.js';
export * from './netns.js';
export * from './state.js';
