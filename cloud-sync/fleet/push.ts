// `perch fleet push`: puts a model version into the fleet store and publishes the device's next
// desired document naming it. Steps: validate, digest + sign, store, read current desired,
// check the device, publish (QoS 1, retained).
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { deviceIdArg, modelNameArg, optionalIntArg, positiveIntArg, requireString } from './args.js';
import { assertKnownDevice } from './device-check.js';
import { nextDesired, publishDesired, readDeviceDocs } from './desired.js';
import { putModel } from './model-store.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, UsageError } from './options.js';
import { buildSpec } from './spec.js';
import { withBroker } from './with-broker.js';

export const PUSH_HELP = `perch fleet push --device ID --model NAME --version N --file MODEL.onnx
                 [--key PRIV.pem] [--chunk-size BYTES] [--config model.json] [--force]

Copies the model into the fleet store (<store>/models/NAME/N/), signs it with --key (without
it the spec has no signature: only devices that allow unsigned models take it), and publishes
the device's retained desired state with its version raised by one, keeping the other models
and the config of the current document. Prints the published document.
--force publishes even to a device the fleet has never heard from (else PERCH_ERR_DEVICE_UNKNOWN).

${COMMON_HELP}`;

export async function pushCommand(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      device: { type: 'string' }, model: { type: 'string' }, version: { type: 'string' }, file: { type: 'string' },
      'chunk-size': { type: 'string' }, config: { type: 'string' }, force: { type: 'boolean' },
    },
  });
  if (values.help) {
    out.write(PUSH_HELP);
    return 0;
  }
  const opts = fleetOptions(values);
  const deviceId = deviceIdArg(values.device);
  const name = modelNameArg(values.model);
  const version = positiveIntArg(values.version, 'version');
  const file = requireString(values.file, 'file');
  if (!statSync(file, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`--file ${file} is not a file`);

  const spec = await buildSpec({
    name, version, file,
    keyFile: values.key, chunkSize: optionalIntArg(values['chunk-size'], 'chunk-size'), configFile: values.config,
  });
  // Into the store first: a device may ask for chunks the moment the desired state arrives.
  putModel(opts.store, name, spec, file);

  const doc = await withBroker(opts, async (client) => {
    const docs = await readDeviceDocs(client, opts.prefix, deviceId, opts.broker.timeoutMs);
    assertKnownDevice(deviceId, docs, opts.store, values.force ?? false);
    const next = nextDesired(docs.desired, (d) => {
      d.models[name] = spec;
    });
    await publishDesired(client, opts.prefix, deviceId, next);
    return next;
  });
  out.write(`${JSON.stringify(doc)}\n`);
  return 0;
}
