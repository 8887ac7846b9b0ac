// Dockerfile.arm64 (for users with Docker) and packaging/build-image.sh (no Docker engine) must
// describe the same image. packaging/image.env is the one source of truth; this test lints the
// Dockerfile and fails when its final stage, the Containerfile build-image.sh generates, the
// image's config file or the Docker build context drift apart from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above the test');
    dir = up;
  }
  return dir;
}

const root = repoRoot();
const read = (p: string): string => readFileSync(join(root, p), 'utf8');

/** packaging/image.env: KEY=VALUE lines, values bare or single-quoted (taken literally, as bash does). */
function readImageEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of read('packaging/image.env').split('\n')) {
    if (/^\s*(#|$)/.test(line)) continue;
    const m = /^([A-Z_][A-Z0-9_]*)=(?:'([^']*)'|(\S*))\s*$/.exec(line);
    assert.ok(m, `packaging/image.env: cannot read line: ${line}`);
    out[m[1]!] = m[2] ?? m[3] ?? '';
  }
  return out;
}

interface Instruction {
  cmd: string;
  args: string;
}

/** Dockerfile instructions (continuations joined, comments dropped), split into stages at FROM. */
function parseDockerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = [];
  const preamble: Instruction[] = [];
  let current = preamble;
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const ins = { cmd: m[1]!.toUpperCase(), args: m[2]!.trim() };
    if (ins.cmd === 'FROM') {
      current = [];
      stages.push(current);
    }
    current.push(ins);
  }
  if (preamble.length) stages.unshift(preamble);
  return stages;
}

function only(stage: Instruction[], cmd: string): string {
  const found = stage.filter((i) => i.cmd === cmd);
  assert.equal(found.length, 1, `expected one ${cmd} in the final stage, found ${found.length}`);
  return found[0]!.args;
}

/** ENV KEY=VALUE [KEY=VALUE...] (values without spaces or quotes, as image.env requires). */
function envOf(stage: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.filter((x) => x.cmd === 'ENV')) {
    for (const kv of i.args.split(/\s+/)) {
      const eq = kv.indexOf('=');
      assert.ok(eq > 0, `ENV ${i.args}: use KEY=VALUE`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1).replace(/^"(.*)"$/, '$1');
    }
  }
  return env;
}

function healthcheck(args: string): { options: string; cmd: unknown } {
  const at = args.indexOf(' CMD ');
  assert.ok(at >= 0, `HEALTHCHECK ${args}: no CMD`);
  return { options: args.slice(0, at).trim(), cmd: JSON.parse(args.slice(at + 5)) };
}

const env = readImageEnv();
const dockerStages = parseDockerfile(read('Dockerfile.arm64'));
const finalStage = dockerStages[dockerStages.length - 1]!;
const generated = parseDockerfile(
  execFileSync('bash', [join(root, 'packaging/build-image.sh'), '--containerfile', 'arm64'], { encoding: 'utf8' }),
);
const scratchStage = generated[generated.length - 1]!;
const envPairs = Object.fromEntries(env.IMAGE_ENV!.split(/\s+/).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

test('Dockerfile.arm64 passes dockerfilelint', () => {
  const bin = join(root, 'node_modules/.bin/dockerfilelint');
  const res = spawnSync(bin, ['-c', join(root, 'packaging'), join(root, 'Dockerfile.arm64')], { encoding: 'utf8' });
  assert.equal(res.status, 0, `dockerfilelint:\n${res.stdout}${res.stderr}`);
});

test('every base image is node:${NODE_VERSION} on the same Debian release; the final one is slim', () => {
  const arg = dockerStages[0]!.find((i) => i.cmd === 'ARG' && i.args.startsWith('NODE_VERSION='));
  assert.equal(arg?.args, `NODE_VERSION=${env.NODE_VERSION}`);
  const froms = dockerStages.flat().filter((i) => i.cmd === 'FROM').map((i) => i.args.replace(/^--platform=\S+\s+/, ''));
  assert.ok(froms.length >= 2, 'multi-stage');
  for (const f of froms) assert.match(f, new RegExp(`^node:\\$\\{NODE_VERSION\\}-${env.DEBIAN_SUITE}(-slim)?( AS \\w+)?$`, 'i'));
  assert.equal(froms[froms.length - 1], `node:\${NODE_VERSION}-${env.DEBIAN_SUITE}-slim`);
});

for (const [name, stage] of [['Dockerfile.arm64', finalStage], ['build-image.sh Containerfile', scratchStage]] as const) {
  test(`${name}: user, env, workdir, volume, port, entrypoint and healthcheck come from packaging/image.env`, () => {
    assert.equal(only(stage, 'USER'), env.IMAGE_USER);
    assert.notEqual(env.IMAGE_USER!.split(':')[0], '0', 'non-root');
    assert.deepEqual(envOf(stage), envPairs);
    assert.equal(only(stage, 'WORKDIR'), env.APP_DIR);
    assert.equal(only(stage, 'VOLUME'), env.DATA_DIR);
    assert.equal(only(stage, 'EXPOSE'), env.PORT);
    assert.deepEqual(JSON.parse(only(stage, 'ENTRYPOINT')), JSON.parse(env.IMAGE_ENTRYPOINT!));
    assert.deepEqual(JSON.parse(only(stage, 'CMD')), JSON.parse(env.IMAGE_CMD!));
    const hc = healthcheck(only(stage, 'HEALTHCHECK'));
    assert.equal(hc.options, env.IMAGE_HEALTHCHECK_OPTIONS);
    assert.deepEqual(hc.cmd, JSON.parse(env.IMAGE_HEALTHCHECK!));
  });

  test(`${name}: /app is the staged app, the config is packaging/perch.json, ${env.DATA_DIR} belongs to the user`, () => {
    const copies = stage.filter((i) => i.cmd === 'COPY').map((i) => i.args.split(/\s+/));
    const to = (dest: string): string[] | undefined => copies.find((c) => c[c.length - 1]!.replace(/\/$/, '') === dest);
    assert.ok(to(env.APP_DIR!), `a COPY into ${env.APP_DIR}`);
    assert.ok(to(env.CONFIG_FILE!)?.some((a) => a.endsWith('perch.json')), `perch.json copied to ${env.CONFIG_FILE}`);
    assert.ok(to(env.DATA_DIR!)?.includes(`--chown=${env.IMAGE_USER}`), `${env.DATA_DIR} owned by ${env.IMAGE_USER}`);
  });
}

test('Dockerfile.arm64 and build-image.sh both assemble /app with packaging/stage-app.sh', () => {
  assert.ok(dockerStages.flat().some((i) => i.cmd === 'RUN' && /\bsh packaging\/stage-app\.sh\b.*\$TARGETARCH/.test(i.args)));
  assert.match(read('packaging/build-image.sh'), /packaging\/stage-app\.sh" "\$tree" "\$work\/context\/app" "\$arch"/);
  assert.ok(dockerStages.flat().some((i) => i.cmd === 'RUN' && i.args.includes('packaging/tsconfig.image.json')));
  assert.match(read('packaging/build-image.sh'), /packaging\/tsconfig\.image\.json/);
});

test('the file list ships compiled runtime code, models and production modules, not tests or benchmarks', () => {
  const files = read('packaging/app-files.txt').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\?$/, ''));
  for (const want of ['package.json', 'dist/bin', 'dist/runtime', 'dist/native', 'dist/cloud-sync', 'models', 'console', 'node_modules']) assert.ok(files.includes(want), want);
  assert.ok(!files.some((f) => f === 'dist' || f.startsWith('dist/test') || f.startsWith('dist/bench')));
  const ts = JSON.parse(read('packaging/tsconfig.image.json')) as { include: string[] };
  assert.deepEqual(ts.include, ['../bin', '../runtime', '../cloud-sync']);
});

test("the image's own config uses absolute paths that match the image layout", () => {
  const cfg = JSON.parse(read('packaging/perch.json')) as { server: { host: string; port: number }; models: { repository: string }; dataDir: string };
  assert.equal(cfg.server.host, '0.0.0.0');
  assert.equal(String(cfg.server.port), env.PORT);
  assert.equal(cfg.models.repository, `${env.APP_DIR}/models`);
  assert.equal(cfg.dataDir, env.DATA_DIR);
  assert.equal(envPairs.PERCH_CONFIG, env.CONFIG_FILE);
  assert.equal(envPairs.ORT_DISABLE_TELEMETRY, '1');
  // npm start's V8 flags ride along (docs/benchmarks.md, "Memory: every lever measured").
  assert.deepEqual(JSON.parse(env.IMAGE_ENTRYPOINT!).slice(1, 3), ['--no-short-builtin-calls', `${env.APP_DIR}/dist/bin/perch.js`]);
});

test('the healthcheck script is valid JavaScript that asks /v2/health/ready', () => {
  const cmd = JSON.parse(env.IMAGE_HEALTHCHECK!) as string[];
  assert.equal(cmd[1], '-e');
  assert.doesNotThrow(() => new Script(cmd[2]!));
  assert.match(cmd[2]!, /\/v2\/health\/ready/);
});

test('the Docker build context (.dockerignore allow-list) holds every file the Dockerfile copies', () => {
  const allowed = read('.dockerignore').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const sources = dockerStages
    .flat()
    .filter((i) => i.cmd === 'COPY' && !i.args.includes('--from='))
    .flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1))
    .map((s) => s.replace(/\/$/, ''));
  for (const s of sources) {
    assert.ok(allowed.some((a) => s === a || s.startsWith(`${a}/`)), `${s} is excluded by .dockerignore`);
    assert.ok(existsSync(join(root, s)), `${s} does not exist`);
  }
});

test('packaging/compose.yaml declares the same healthcheck (OCI images built without Docker carry none)', () => {
  const line = read('packaging/compose.yaml').split('\n').find((l) => /^\s+test: \[/.test(l));
  assert.ok(line, 'a healthcheck test in compose.yaml');
  assert.deepEqual(JSON.parse(line.trim().slice('test: '.length)), ['CMD', ...(JSON.parse(env.IMAGE_HEALTHCHECK!) as string[])]);
});
