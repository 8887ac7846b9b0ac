// The modules `perch serve` starts with the runtime, beside its own (docs/design.md house style
// 13): today the cloud-sync agent when cloud.mqttUrl is set. Tests that start a runtime in-process
// wire it the same way (test/helpers/runtime.ts).
import type { PerchConfig } from '../runtime/config/schema.js';
import type { ModuleFactory } from '../runtime/port/runtime-port.js';

/** The cloud agent, loaded only when it is used: devices without a cloud never load mqtt.js. */
const cloudAgent: ModuleFactory = async (port) => (await import('../cloud-sync/agent/index.js')).createCloudAgent(port);

export function modulesFor(config: Readonly<PerchConfig>): ModuleFactory[] {
  return config.cloud.mqttUrl ? [cloudAgent] : [];
}
