// A model update as an ordered array of named steps (docs/design.md house style 8; docs/cloud-sync.md
// "Model updates"): check version, signature and space, fetch chunks, verify size and digest,
// stage, load, warm up, swap. Each step is small, logged with its duration, and owns the
// PERCH_ERR_* code reported when it fails (unless it throws a PerchError with a more precise
// one, e.g. install's load/warm-up codes).
// Any failing step leaves the old model serving: only `install` touches the repository, and the
// runtime's install undoes itself on failure.
import { PerchError, toPerchError, type ErrorCode } from '../../../runtime/base/errors.js';
import type { Logger } from '../../../runtime/base/log.js';
import type { Tracing } from '../../../runtime/base/tracing.js';
import type { Span } from '@opentelemetry/api';
import { chunkDigestsProblem, chunkingProblem, type ModelSpec } from '../../protocol/index.js';
import type { RuntimePort, ServedModel } from '../../../runtime/port/runtime-port.js';
import type { ChunkStore } from './chunk-store.js';
import type { ModelDownload } from './staged-download.js';
import { INSTALLABLE_MODEL_NAME } from '../../../runtime/models/repository.js';
import { servedByName } from '../served.js';
import { checkSignature } from './signature.js';
import { checkSpace, isNoSpace } from './space.js';
import type { BookEntry } from './status-book.js';

export interface UpdateContext {
  runtime: Pick<RuntimePort, 'models' | 'cloud' | 'clock'>;
  name: string;
  spec: ModelSpec;
  store: ChunkStore;
  signal: AbortSignal;
  log: Logger;
  /** Creates the chunk download (the updater routes incoming chunks to it). */
  startDownload(): ModelDownload;
  /** Sets the model's status for state/reported. */
  setStatus(status: BookEntry['status']): void;
  /**
   * Disk bytes the other updates past their check-space still have to write (download and
   * install copy, less what they staged): free space already promised, not to be counted twice.
   */
  reservedByOthers(): number;
  /** This update passed check-space: it holds its bytes until it ends. */
  reserve(): void;
  /** The update's `perch.model.update` span while tracing is on (docs/observability.md). */
  trace?: { tracing: Tracing; span: Span } | undefined;
  assembled?: { size: number; sha256: string };
  installed?: ServedModel;
}

export interface UpdateStep {
  name: string;
  /** Code reported when the step fails with an error that carries none. */
  code: ErrorCode;
  run(ctx: UpdateContext): Promise<void>;
}

export const UPDATE_STEPS: readonly UpdateStep[] = [
  // The checks run before the first chunk is asked for: a refused update costs nothing.
  {
    // The protocol's names allow ':', the runtime's install does not: such a model was fetched
    // whole and then refused by the install (docs/cloud-sync.md, "Checked before the download").
    name: 'check-name',
    code: 'PERCH_ERR_MODEL_CONFIG_INVALID',
    run: async (ctx) => {
      if (!INSTALLABLE_MODEL_NAME.test(ctx.name)) {
        throw new PerchError('PERCH_ERR_MODEL_CONFIG_INVALID', `'${ctx.name}' is not a usable model name: letters, digits and _ . - only (no ':'), starting with a letter or digit`);
      }
    },
  },
  {
    // A replayed old signed spec is a downgrade attack: going back is the rollback command or a
    // new version signed by the fleet (docs/cloud-sync.md, "Checked before the download").
    name: 'check-version',
    code: 'PERCH_ERR_MODEL_DOWNGRADE',
    run: async (ctx) => {
      const served = servedByName(ctx.runtime.models).get(ctx.name);
      if (served && ctx.spec.version < served.version) {
        throw new PerchError('PERCH_ERR_MODEL_DOWNGRADE', `desired version ${ctx.spec.version} of '${ctx.name}' is lower than version ${served.version} that serves; use the rollback command or push a new version`);
      }
    },
  },
  {
    // The signature covers the name, version, digest, size and model.json: all known now.
    name: 'check-signature',
    code: 'PERCH_ERR_MODEL_SIGNATURE_INVALID',
    run: async (ctx) => {
      const how = checkSignature(ctx.name, ctx.spec, ctx.runtime.cloud);
      if (how === 'unsigned-allowed') ctx.log.warn('model accepted without a verified signature (cloud.allowUnsignedModels)');
    },
  },
  {
    name: 'check-space',
    code: 'PERCH_ERR_MODEL_NO_SPACE',
    run: async (ctx) => {
      const { download } = ctx.runtime.cloud;
      const r = checkSpace({
        name: ctx.name, version: ctx.spec.version, size: ctx.spec.size, staged: Math.min(ctx.spec.size, ctx.store.allocatedBytes()),
        stagingDir: ctx.runtime.models.stagingDir, repositoryDir: ctx.runtime.models.repositoryDir,
        maxModelBytes: download.maxModelBytes, headroomBytes: download.diskHeadroomBytes,
        reserved: ctx.reservedByOthers(),
      });
      ctx.log.debug(r, 'disk space for the update');
      // chunkSize is not signed: it must not make the download cost more than the file does
      // (a journal record and a request per chunk, windowChunks whole chunks in memory).
      const chunking = chunkingProblem(ctx.spec.size, ctx.spec.chunkSize);
      if (chunking) throw new PerchError('PERCH_ERR_MODEL_CHUNK_SIZE_INVALID', `model '${ctx.name}' version ${ctx.spec.version}: ${chunking}`);
      // A list of chunk digests that cannot be this file's would refuse every chunk.
      const digests = ctx.spec.chunkDigests === undefined ? null : chunkDigestsProblem(ctx.spec.size, ctx.spec.chunkSize, ctx.spec.chunkDigests);
      if (digests) throw new PerchError('PERCH_ERR_MODEL_CHUNK_SIZE_INVALID', `model '${ctx.name}' version ${ctx.spec.version}: ${digests}`);
      ctx.reserve();
    },
  },
  {
    name: 'fetch-chunks',
    code: 'PERCH_ERR_MODEL_DOWNLOAD_FAILED',
    run: async (ctx) => {
      ctx.setStatus('downloading');
      await ctx.startDownload().run(ctx.signal);
    },
  },
  {
    // Measures and hashes the staged file; a truncated or padded file stops here (the download
    // already refuses a chunk of the wrong length, so this is the last line, not the first).
    name: 'verify-size',
    code: 'PERCH_ERR_MODEL_SIZE_MISMATCH',
    run: async (ctx) => {
      ctx.assembled = await ctx.store.measure();
      if (ctx.assembled.size !== ctx.spec.size) {
        throw new PerchError('PERCH_ERR_MODEL_SIZE_MISMATCH', `downloaded ${ctx.assembled.size} bytes, desired state says ${ctx.spec.size}`);
      }
    },
  },
  {
    name: 'verify-digest',
    code: 'PERCH_ERR_MODEL_DIGEST_MISMATCH',
    run: async (ctx) => {
      const got = ctx.assembled?.sha256;
      // The digest ties the bytes to the signature checked before the download.
      if (got !== ctx.spec.sha256) {
        throw new PerchError('PERCH_ERR_MODEL_DIGEST_MISMATCH', `downloaded file has SHA-256 ${got}, desired state says ${ctx.spec.sha256}`);
      }
    },
  },
  {
    name: 'stage',
    code: 'PERCH_ERR_INTERNAL',
    run: async (ctx) => {
      ctx.setStatus('staged');
    },
  },
  {
    // The runtime stages into the repository, loads, warms up and swaps; on failure it undoes.
    name: 'load-warmup-swap',
    code: 'PERCH_ERR_MODEL_LOAD_FAILED',
    run: async (ctx) => {
      ctx.installed = await ctx.runtime.models.install(ctx.name, ctx.spec.version, ctx.store.modelFile, ctx.spec.config);
    },
  },
];

export class StepFailure extends Error {
  constructor(
    readonly step: string,
    readonly error: PerchError,
  ) {
    super(`${step}: ${error.message}`);
  }
}

/** Runs the steps in order; throws StepFailure (or the abort reason when cancelled). */
export async function runSteps(steps: readonly UpdateStep[], ctx: UpdateContext): Promise<void> {
  for (const step of steps) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const t0 = ctx.runtime.clock.now();
    ctx.log.debug({ step: step.name }, 'model update step started');
    const span = ctx.trace ? ctx.trace.tracing.startSpan(`perch.model.update.${step.name}`, { parent: ctx.trace.span }) : null;
    try {
      await step.run(ctx);
      if (span) ctx.trace?.tracing.end(span);
    } catch (err) {
      if (ctx.signal.aborted) {
        if (span) ctx.trace?.tracing.end(span);
        throw ctx.signal.reason;
      }
      // A full disk is said as such whichever step met it (the staging directory, the install
      // copy): the updater then gives the staged bytes back, and a later try checks space first.
      const code = isNoSpace(err) ? 'PERCH_ERR_MODEL_NO_SPACE' : step.code;
      const e = err instanceof PerchError ? err : new PerchError(code, toPerchError(err).message, { cause: err });
      if (span) ctx.trace?.tracing.end(span, e.code, e.message);
      ctx.log.warn({ step: step.name, code: e.code, err: e.message, ms: Math.round(ctx.runtime.clock.now() - t0) }, 'model update step failed');
      throw new StepFailure(step.name, e);
    }
    ctx.log.info({ step: step.name, ms: Math.round(ctx.runtime.clock.now() - t0) }, 'model update step done');
  }
}
