// `perch fleet push`: puts a model version into the fleet store and publishes the device's next
// desired document naming it. Steps: validate, digest + sign, read current desired, check the
// device, store, publish (QoS 1, retained).
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { modelNameArg, optionalIntArg, positiveIntArg, requireString } from '../cli/args.js';
import { assertKnownDevice } from '../broker/device-check.js';
import { publishNext, readDeviceDocs } from '../broker/desired.js';
import { putModel } from '../store/model-store.js';
import { COMMON_HELP, COMMON_OPTIONS, fleetOptions, UsageError } from '../cli/options.js';
import { buildSpec } from '../store/model-spec.js';
import { modelSpecSchema } from '../../protocol/schemas.js';
import { WAIT_EXIT, waitForOutcome } from '../broker/wait-outcome.js';
import { withBroker } from '../broker/with-broker.js';
import { targetDeviceIds } from '../cli/target-devices.js';
import { TARGET_HELP, TARGET_OPTIONS } from '../cli/targets.js';

export const PUSH_HELP = `perch fleet push (--device ID ... | --select K=V[,K=V] | --all) --model NAME --version N --file MODEL.onnx
                 [--sign-key PRIV.pem] [--chunk-size BYTES] [--config model.json] [--force]
                 [--model-url URL]
                 [--wait [--wait-timeout SECONDS]]

Copies the model into the fleet store (<store>/models/NAME/N/), signs it with --sign-key (an
Ed25519 private key from perch fleet keygen, else PERCH_ERR_SIGNING_KEY_INVALID; the signature
covers the model file and its --config model.json; without it the spec has no signature: only
devices that allow unsigned models take it), and publishes
the device's retained desired state with its version raised by one, keeping the other models
and the config of the current document. Prints the published document.
--wait follows the device's state/reported until the version is active (exit 0), failed (exit
1, with the device's code), ignored by the device (exit 3) or --wait-timeout seconds (default
600) pass (exit 4), printing download progress on stderr.
--model-url URL puts the url into the spec: the device fetches the bytes from it with HTTP Range
requests instead of MQTT chunks (any HTTP(S) server with Range support, e.g. 'perch fleet serve
--http PORT' at http://HOST:PORT/models/NAME/VERSION/model.onnx); digest and signature are
checked the same.
--force publishes even to a device the fleet has never heard from (else PERCH_ERR_DEVICE_UNKNOWN;
nothing is written to the fleet store then). --key is the broker's TLS client key (with --cert),
never the signing key.
Several devices: the model is stored once and each device gets its document in turn (one line
each); --wait takes one device only. For staged delivery with health gates: perch fleet rollout.

${TARGET_HELP}
${COMMON_HELP}`;

export async function pushCommand(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...COMMON_OPTIONS,
      ...TARGET_OPTIONS, model: { type: 'string' }, version: { type: 'string' }, file: { type: 'string' },
      'sign-key': { type: 'string' }, 'chunk-size': { type: 'string' }, config: { type: 'string' }, force: { type: 'boolean' },
      wait: { type: 'boolean' }, 'wait-timeout': { type: 'string' }, 'model-url': { type: 'string' },
    },
  });
  if (values.help) {
    out.write(PUSH_HELP);
    return 0;
  }
  // --key used to be the signing key too: said plainly rather than signing nothing.
  if (values.key !== undefined && values.cert === undefined && values['sign-key'] === undefined) {
    throw new UsageError('--key is the TLS client key and needs --cert; sign models with --sign-key');
  }
  const opts = fleetOptions(values);
  const deviceIds = await targetDeviceIds(values, opts);
  if (values.wait && deviceIds.length !== 1) throw new UsageError(`--wait follows one device; ${deviceIds.length} are targeted`);
  const name = modelNameArg(values.model);
  const version = positiveIntArg(values.version, 'version');
  const file = requireString(values.file, 'file');
  if (!statSync(file, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`--file ${file} is not a file`);

  const spec = await buildSpec({
    name, version, file,
    keyFile: values['sign-key'], chunkSize: optionalIntArg(values['chunk-size'], 'chunk-size'), configFile: values.config,
  });

  if (values['model-url'] !== undefined) {
    const url = modelSpecSchema.shape.url.safeParse(values['model-url']);
    if (!url.success) throw new UsageError(`--model-url ${values['model-url']} is not an http:// or https:// URL`);
    spec.url = url.data;
  }
  const waitMs = (optionalIntArg(values['wait-timeout'], 'wait-timeout') ?? 600) * 1000;

  return withBroker(opts, async (client) => {
    let stored = false;
    for (const deviceId of deviceIds) {
      const docs = await readDeviceDocs(client, opts.prefix, deviceId, opts.broker.timeoutMs);
      // Before anything is written: a push refused for an unknown device leaves the store as it was.
      await assertKnownDevice(deviceId, docs, opts, values.force ?? false);
      // Into the store before publishing: a device may ask for chunks the moment the desired state arrives.
      if (!stored) putModel(opts.store, name, spec, file);
      stored = true;
      const doc = await publishNext(client, opts, opts.prefix, deviceId, docs, (d) => {
        d.models[name] = spec;
      });
      out.write(`${JSON.stringify(doc)}\n`);
      if (values.wait) return WAIT_EXIT[await waitForOutcome(client, opts.prefix, { deviceId, doc, name, spec }, waitMs, err)];
    }
    return 0;
  });
}
