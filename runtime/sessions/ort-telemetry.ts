// onnxruntime-node's Linux build (1.30) starts a telemetry system when its environment is created
// with the first session: one more thread, a SQLite database under
// $XDG_CACHE_HOME (else ~/.cache)/Microsoft/DeveloperTools/.onnxruntime written as sessions are created and run, and
// HTTPS uploads wherever it finds a CA bundle. A device runtime writes only into its data
// directory and talks only to the endpoints it is configured with (docs/config.md, "What Perch
// sets for onnxruntime"), so telemetry is off unless the operator set the variable themselves.
// ORT reads ORT_DISABLE_TELEMETRY from the process environment when that environment is created,
// so this must run on the main thread (a worker's process.env is its own copy) before any session.

/** Sets ORT_DISABLE_TELEMETRY=1 unless it is already set (to anything, an operator's choice). */
export function disableOrtTelemetry(env: NodeJS.ProcessEnv = process.env): void {
  if (env.ORT_DISABLE_TELEMETRY === undefined) env.ORT_DISABLE_TELEMETRY = '1';
}
