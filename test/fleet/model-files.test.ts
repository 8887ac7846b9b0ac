// The fleet store's model files held open between chunk requests (model-files.ts): a version
// pushed again under the same number is noticed, a missing one is FLEET_MODEL_MISSING, and reads
// under way keep their file until they are done.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ModelFiles } from '../../cloud-sync/fleet/store/model-files.js';
import { putModel, readChunk } from '../../cloud-sync/fleet/store/model-store.js';
import { buildSpec } from '../../cloud-sync/fleet/store/model-spec.js';
import { TempDirs } from './harness.js';

const temp = new TempDirs();
after(() => temp.cleanup());

async function push(store: string, version: number, bytes: Buffer): Promise<void> {
  const file = join(temp.make(), 'm.onnx');
  writeFileSync(file, bytes);
  putModel(store, 'm', await buildSpec({ name: 'm', version, file, chunkSize: 4 }), file);
}

async function readAll(files: ModelFiles, version: number): Promise<Buffer> {
  const m = await files.get('m', version);
  try {
    const parts: Buffer[] = [];
    for (let i = 0; i < Math.ceil(m.spec.size / m.spec.chunkSize); i++) parts.push(await readChunk(m.file, 'm', m.spec, i));
    return Buffer.concat(parts);
  } finally {
    m.release();
  }
}

void test('serves the stored bytes, notices a version pushed again, and refuses a missing one', async () => {
  const store = temp.make();
  const files = new ModelFiles(store, 2);
  try {
    await push(store, 1, Buffer.from('first file, v1'));
    assert.equal(String(await readAll(files, 1)), 'first file, v1');
    // A request still reading the old file keeps it while the version is pushed again.
    const held = await files.get('m', 1);
    await push(store, 1, Buffer.from('second, longer file under v1'));
    assert.equal(String(await readAll(files, 1)), 'second, longer file under v1');
    const buf = Buffer.alloc(5);
    await held.file.read(buf, 0, 5, 0);
    assert.equal(String(buf), 'first');
    held.release();
    await assert.rejects(files.get('m', 9), { code: 'PERCH_ERR_FLEET_MODEL_MISSING' });
    // More versions than it keeps open: the idle ones are closed, each still serves when asked.
    for (const v of [2, 3, 4]) await push(store, v, Buffer.from(`v${v} bytes`));
    for (const v of [2, 3, 4, 1]) assert.match(String(await readAll(files, v)), v === 1 ? /second/ : new RegExp(`v${v}`));
  } finally {
    await files.close();
  }
});
