// Temporary model repositories built from the real models, one folder per test.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHIPPED_MODELS } from './paths.js';

export interface ModelSpecForTest {
  /** Source ONNX file per version; a Buffer is written as is (e.g. a corrupt file). */
  versions: Record<number, string | Buffer>;
  /** model.json contents (object is JSON-encoded, string written raw); omitted = no model.json. */
  config?: unknown;
}

export class TempRepository {
  readonly dir: string;

  constructor(models: Record<string, ModelSpecForTest> = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'perch-repo-'));
    for (const [name, spec] of Object.entries(models)) this.addModel(name, spec);
  }

  addModel(name: string, spec: ModelSpecForTest): void {
    mkdirSync(join(this.dir, name), { recursive: true });
    if (spec.config !== undefined) this.writeConfig(name, spec.config);
    for (const [v, src] of Object.entries(spec.versions)) this.addVersion(name, Number(v), src);
  }

  addVersion(name: string, version: number, src: string | Buffer): void {
    const dir = join(this.dir, name, String(version));
    mkdirSync(dir, { recursive: true });
    if (typeof src === 'string') copyFileSync(src, join(dir, 'model.onnx'));
    else writeFileSync(join(dir, 'model.onnx'), src);
  }

  removeVersion(name: string, version: number): void {
    rmSync(join(this.dir, name, String(version)), { recursive: true, force: true });
  }

  writeConfig(name: string, config: unknown): void {
    writeFileSync(join(this.dir, name, 'model.json'), typeof config === 'string' ? config : JSON.stringify(config));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The model.json of a model in the shipped repository (models/), parsed. */
export function shippedModelConfig(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(SHIPPED_MODELS, name, 'model.json'), 'utf8')) as Record<string, unknown>;
}
