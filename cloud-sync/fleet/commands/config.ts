// `perch fleet config --device ID --set key=value ... --unset key ...`: read-modify-publish of
// the desired document's live config. The patch merges into the current config (other keys
// stay), --unset keys are taken out, and the result is checked against the live-config schema
// before it is published: a key the device would refuse is refused here, so it never reaches
// the retained document (where every later push would carry it along).
import type { MqttClient } from 'mqtt';
import { parseArgs } from 'node:util';
import { PerchError } from '../../../runtime/base/errors.js';
import { LIVE_KEYS, liveDocumentIssues } from '../../../runtime/config/live-config.js';
import { applySet, applyUnset } from '../cli/config-set.js';
import { assertKnownDevice } from '../broker/device-check.js';
import { mergeConfig, publishNext, readDeviceDocs } from '../broker/desired.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, UsageError } from '../cli/options.js';
import { withBroker } from '../broker/with-broker.js';
import { targetDeviceIds } from '../cli/target-devices.js';
import { TARGET_HELP, TARGET_OPTIONS } from '../cli/targets.js';

export const CONFIG_HELP = `perch fleet config (--device ID ... | --select K=V[,K=V] | --all) [--set key=value ...] [--unset key ...] [--force]

Publishes the device's next desired state with the given live config keys set (merged into
the current desired config; the models stay). Dotted keys make nested objects; values are
parsed as JSON when they parse, else taken as strings:
  --set log.level=debug
  --set cloud.upload.batchSize=50
  --set models.overrides.silero-vad.batching.maxQueueDelayMs=2
  --unset models.overrides.silero-vad      (the key and what is under it; the device goes back
                                            to its own setting)
Only live keys (${LIVE_KEYS.join(', ')}) with valid values are published: anything else is
refused with PERCH_ERR_LIVE_CONFIG_INVALID and nothing is published, also when the current
desired config already holds a bad key (take it out with --unset).
The device validates the document whole and reports the outcome in state/reported.
Several devices: one document each, in turn; prints one line per device.

${TARGET_HELP}
${COMMON_HELP}`;

export async function configCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, ...TARGET_OPTIONS, set: { type: 'string', multiple: true }, unset: { type: 'string', multiple: true }, force: { type: 'boolean' } },
  });
  if (values.help) {
    out.write(CONFIG_HELP);
    return 0;
  }
  const opts = fleetOptions(values);
  const deviceIds = await targetDeviceIds(values, opts);
  const sets = values.set ?? [];
  const unsets = values.unset ?? [];
  if (sets.length + unsets.length === 0) throw new UsageError('config needs at least one --set key=value or --unset key');
  const patch: Record<string, unknown> = {};
  for (const s of sets) applySet(patch, s);

  await withBroker(opts, async (client) => {
    for (const deviceId of deviceIds) out.write(`${JSON.stringify(await one(client, deviceId))}\n`);
  });
  return 0;

  async function one(client: MqttClient, deviceId: string): Promise<unknown> {
    const docs = await readDeviceDocs(client, opts.prefix, deviceId, opts.broker.timeoutMs);
    await assertKnownDevice(deviceId, docs, opts, values.force ?? false);
    return publishNext(client, opts, opts.prefix, deviceId, docs, (d) => {
      d.config = mergeConfig(d.config, patch);
      for (const key of unsets) applyUnset(d.config, key);
      const issues = liveDocumentIssues(d.config);
      if (issues) {
        throw new PerchError('PERCH_ERR_LIVE_CONFIG_INVALID', `not published: ${deviceId} would refuse this config ${issues}\n(take a key out with --unset KEY)`);
      }
    });
  }
}
