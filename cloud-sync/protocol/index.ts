// docs/protocol.md section 5 as code: topics, payload schemas, payload parsing, model signatures.
// Shared by the device agent (cloud-sync/agent) and `perch fleet` (cloud-sync/fleet); its
// exports are a stable API.
export * from './topics.js';
export * from './schemas.js';
export * from './parse.js';
export * from './signing.js';
export * from './ranges.js';
export * from './chunks.js';
