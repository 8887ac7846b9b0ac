// The gRPC library is loaded only when gRPC is configured (docs/grpc.md): a runtime started
// without server.grpcPort / server.grpcSocketPath has no @grpc module loaded; one with it has.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { REPO_ROOT, SHIPPED_MODELS } from '../helpers/paths.js';

const run = promisify(execFile);

async function grpcLoaded(grpcPort: number | null): Promise<boolean> {
  const script = `
    import { createRequire } from 'node:module';
    const { startRuntime } = await import(${JSON.stringify(join(REPO_ROOT, 'dist/test/helpers/runtime.js'))});
    const rt = await startRuntime(${JSON.stringify(SHIPPED_MODELS)}, { server: { grpcPort: ${JSON.stringify(grpcPort)} } });
    const loaded = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('@grpc'));
    await rt.stop();
    console.log(JSON.stringify({ loaded }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT });
  return (JSON.parse(stdout.trim().split('\n').pop() as string) as { loaded: boolean }).loaded;
}

test('no gRPC configured: @grpc/grpc-js is never loaded', async () => {
  assert.equal(await grpcLoaded(null), false);
});

test('server.grpcPort set: it is loaded', async () => {
  assert.equal(await grpcLoaded(0), true);
});
