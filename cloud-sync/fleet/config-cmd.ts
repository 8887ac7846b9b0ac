// `perch fleet config --device ID --set key=value ...`: read-modify-publish of the desired
// document's live config. The patch merges into the current config (other keys stay).
import { parseArgs } from 'node:util';
import { deviceIdArg } from './args.js';
import { applySet } from './config-set.js';
import { assertKnownDevice } from './device-check.js';
import { mergeConfig, nextDesired, publishDesired, readDeviceDocs } from './desired.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, UsageError } from './options.js';
import { withBroker } from './with-broker.js';

export const CONFIG_HELP = `perch fleet config --device ID --set key=value [--set key=value ...] [--force]

Publishes the device's next desired state with the given live config keys set (merged into
the current desired config; the models stay). Dotted keys make nested objects; values are
parsed as JSON when they parse, else taken as strings:
  --set log.level=debug
  --set cloud.upload.batchSize=50
  --set models.overrides.silero-vad.batching.maxQueueDelayMs=2
The device validates the document whole and reports the outcome in state/reported.

${COMMON_HELP}`;

export async function configCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, device: { type: 'string' }, set: { type: 'string', multiple: true }, force: { type: 'boolean' } },
  });
  if (values.help) {
    out.write(CONFIG_HELP);
    return 0;
  }
  const opts = fleetOptions(values);
  const deviceId = deviceIdArg(values.device);
  if (!values.set?.length) throw new UsageError('config needs at least one --set key=value');
  const patch: Record<string, unknown> = {};
  for (const s of values.set) applySet(patch, s);

  const doc = await withBroker(opts, async (client) => {
    const docs = await readDeviceDocs(client, opts.prefix, deviceId, opts.broker.timeoutMs);
    assertKnownDevice(deviceId, docs, opts.store, values.force ?? false);
    const next = nextDesired(docs.desired, (d) => {
      d.config = mergeConfig(d.config, patch);
    });
    await publishDesired(client, opts.prefix, deviceId, next);
    return next;
  });
  out.write(`${JSON.stringify(doc)}\n`);
  return 0;
}
