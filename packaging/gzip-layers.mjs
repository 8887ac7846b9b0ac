#!/usr/bin/env node
// Compresses the layers of an OCI archive again with GNU gzip -9 -n, in place:
//
//   node packaging/gzip-layers.mjs build/images/perch-linux-arm64.oci.tar
//
// Why: the builder's own gzip (Go, parallel blocks) left the arm64 archive at 81.6 MB even at
// its level 9; GNU gzip -9 gives 79.3 MB for the same layers (issue 17: archive <= 80 MB), and
// every engine still pulls gzip layers (zstd would be smaller, but older engines cannot pull it).
// GNU gzip with -n writes no name and no time, so two builds of the same layers still give the
// same digests. build-image.sh runs this right after buildah's push. Layers come gzip-compressed
// by the builder (whatever its flags say, it reuses blobs it compressed before) or uncompressed:
// both are decompressed and compressed again.
//
// The layers' diff_ids in the image config are digests of the uncompressed tars and do not
// change; the manifest's layer descriptors (media type, digest, size) do, and so does the index.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, statSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const archive = process.argv[2];
if (!archive) {
  console.error('usage: node packaging/gzip-layers.mjs IMAGE.oci.tar');
  process.exit(2);
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...options });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  return r.stdout;
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';

const dir = mkdtempSync(join(tmpdir(), 'perch-oci-'));
try {
  run('tar', ['-xf', archive, '-C', dir]);
  const blob = (digest) => join(dir, 'blobs', ...digest.split(':'));
  const indexPath = join(dir, 'index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8'));
  let changed = 0;
  for (const entry of index.manifests) {
    const manifest = JSON.parse(readFileSync(blob(entry.digest), 'utf8'));
    for (const layer of manifest.layers) {
      if (layer.mediaType !== LAYER_TAR && layer.mediaType !== `${LAYER_TAR}+gzip`) continue;
      const source = blob(layer.digest);
      const gz = `${source}.gz`;
      const unpack = layer.mediaType === LAYER_TAR ? 'cat' : 'gzip -d -c';
      run('bash', ['-o', 'pipefail', '-c', `${unpack} "$1" | gzip -9 -n -c > "$2"`, 'gzip', source, gz]);
      const digest = `sha256:${sha256(readFileSync(gz))}`;
      rmSync(source);
      renameSync(gz, blob(digest));
      Object.assign(layer, { mediaType: `${LAYER_TAR}+gzip`, digest, size: statSync(blob(digest)).size });
      changed += 1;
    }
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = `sha256:${sha256(bytes)}`;
    rmSync(blob(entry.digest));
    writeFileSync(blob(digest), bytes);
    Object.assign(entry, { digest, size: bytes.length });
  }
  writeFileSync(indexPath, JSON.stringify(index));
  // Deterministic tar: sorted names, fixed times and owners, no "./" prefix.
  const next = `${archive}.next`;
  run('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', next,
    '-C', dir, 'oci-layout', 'index.json', 'blobs']);
  renameSync(next, archive);
  console.log(`gzip-layers: ${changed} layer(s) compressed again with gzip -9 -n in ${archive} (${statSync(archive).size} bytes)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
