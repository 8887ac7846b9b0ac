// `perch fleet remove --device ID --model NAME`: publishes the device's next desired document
// with `models[NAME] = null`, which docs/protocol.md section 5 defines as "remove the model" (models not
// named stay as they are). Steps: validate, read current desired (+ status, reported), check the
// device and the model, publish (QoS 1, retained).
import { parseArgs } from 'node:util';
import { PerchError } from '../../../runtime/base/errors.js';
import type { MqttClient } from 'mqtt';
import { modelNameArg } from '../cli/args.js';
import { assertKnownDevice } from '../broker/device-check.js';
import { publishNext, readDeviceDocs, type DeviceDocs } from '../broker/desired.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions } from '../cli/options.js';
import { withBroker } from '../broker/with-broker.js';
import { targetDeviceIds } from '../cli/target-devices.js';
import { TARGET_HELP, TARGET_OPTIONS } from '../cli/targets.js';

export const REMOVE_HELP = `perch fleet remove (--device ID ... | --select K=V[,K=V] | --all) --model NAME [--force]

Publishes the device's retained desired state with its version raised by one and the model set
to null (docs/protocol.md section 5: null removes the model). The device stops serving it, deletes it
from its model repository (and any download of it in progress), drops it from state/reported
and records a model.removed event. The other models and the config of the current document
stay. The fleet store keeps the model's files (push it again to bring it back).
Without --force the device must be known (else PERCH_ERR_DEVICE_UNKNOWN) and the model must be
named in its desired state or in its reported state (else PERCH_ERR_MODEL_NOT_FOUND).
Prints the published document (one line per device).

${TARGET_HELP}
${COMMON_HELP}`;

export async function removeCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { ...COMMON_OPTIONS, ...TARGET_OPTIONS, model: { type: 'string' }, force: { type: 'boolean' } },
  });
  if (values.help) {
    out.write(REMOVE_HELP);
    return 0;
  }
  const opts = fleetOptions(values);
  const deviceIds = await targetDeviceIds(values, opts);
  const name = modelNameArg(values.model);
  const force = values.force ?? false;

  await withBroker(opts, async (client) => {
    for (const deviceId of deviceIds) out.write(`${JSON.stringify(await one(client, deviceId))}\n`);
  });
  return 0;

  async function one(client: MqttClient, deviceId: string): Promise<unknown> {
    const docs = await readDeviceDocs(client, opts.prefix, deviceId, opts.broker.timeoutMs);
    await assertKnownDevice(deviceId, docs, opts, force);
    if (!force && !namesModel(docs, name)) {
      throw new PerchError(
        'PERCH_ERR_MODEL_NOT_FOUND',
        `device '${deviceId}' has no model '${name}': its desired state does not name it and its reported state does not list it (pass --force to publish anyway)`,
      );
    }
    return publishNext(client, opts, opts.prefix, deviceId, docs, (d) => {
      d.models[name] = null;
    });
  }
}

/** A ModelSpec for it in the desired state, or an entry in the reported state (served, downloading or failed). */
function namesModel(docs: DeviceDocs, name: string): boolean {
  if (docs.desired?.models[name]) return true;
  if (!docs.reported) return false;
  try {
    const reported = JSON.parse(docs.reported.toString('utf8')) as { models?: Record<string, unknown> };
    return typeof reported.models === 'object' && reported.models !== null && Object.hasOwn(reported.models, name);
  } catch {
    // A reported document that is not JSON says nothing about the model.
    return false;
  }
}
