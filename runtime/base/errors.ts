// The one registry of Perch's error codes (docs/design.md house style 3, like fastify's FST_ERR_* or
// undici's UND_ERR_*). A code, once shipped, is never reused or given another meaning;
// docs/errors.md lists the same table and test/errors/registry.test.ts keeps them in sync.

export const ERROR_CODES = {
  // Requests that cannot be read.
  PERCH_ERR_MALFORMED_JSON: { status: 400, summary: 'The body or frame is not valid JSON.' },
  PERCH_ERR_INVALID_MESSAGE: { status: 400, summary: 'The request does not match the protocol schema.' },
  PERCH_ERR_UNKNOWN_OP: { status: 400, summary: 'The WebSocket message names an operation Perch does not have.' },
  PERCH_ERR_REQUEST_TOO_LARGE: { status: 413, summary: 'The HTTP body or WebSocket frame is over the configured size limit.' },
  PERCH_ERR_BINARY_SIZE: { status: 400, summary: 'Binary tensor sizes disagree with the header, the shape or the bytes sent.' },
  PERCH_ERR_UNAUTHORIZED: { status: 401, summary: 'An API token is configured and the request did not carry it.' },
  PERCH_ERR_ORIGIN_FORBIDDEN: { status: 403, summary: 'A browser page from another origin tried to change state or open a WebSocket (server.allowedOrigins).' },
  PERCH_ERR_HOST_FORBIDDEN: { status: 403, summary: 'The Host header names neither this device nor server.allowedHosts (DNS rebinding guard).' },
  PERCH_ERR_ROUTE_NOT_FOUND: { status: 404, summary: 'No HTTP endpoint at this path.' },
  PERCH_ERR_METHOD_NOT_ALLOWED: { status: 405, summary: 'The endpoint exists but not for this HTTP method.' },
  PERCH_ERR_BODY_TIMEOUT: { status: 408, summary: 'Nothing of the request body arrived for server.slowReaderTimeoutMs plus 4 s (the longest the intake parks a connection): the request was refused, what it held of the client budget given back, and the connection closes.' },
  PERCH_ERR_EXPECTATION_FAILED: { status: 417, summary: 'The request has an Expect field other than 100-continue, which Perch does not meet; the connection closes.' },

  // Requests that name a model or tensors wrongly.
  PERCH_ERR_MODEL_NOT_FOUND: { status: 404, summary: 'No model of that name in the repository.' },
  PERCH_ERR_VERSION_NOT_FOUND: { status: 404, summary: 'The model exists but that version is not served.' },
  PERCH_ERR_MODEL_NOT_READY: { status: 503, summary: 'The model is known but not loaded (it failed to load, or is loading).' },
  PERCH_ERR_MISSING_INPUT: { status: 400, summary: 'An input the model needs is not in the request.' },
  PERCH_ERR_UNKNOWN_INPUT: { status: 400, summary: 'The request names an input the model does not have.' },
  PERCH_ERR_UNKNOWN_OUTPUT: { status: 400, summary: 'The request asks for an output the model does not have.' },
  PERCH_ERR_DATATYPE_MISMATCH: { status: 400, summary: "A tensor's datatype is not the one the model takes." },
  PERCH_ERR_SHAPE_MISMATCH: { status: 400, summary: "A tensor's shape does not fit the model's dims." },
  PERCH_ERR_TENSOR_DATA: { status: 400, summary: "A tensor's data does not match its shape and datatype." },
  PERCH_ERR_BATCH_TOO_LARGE: { status: 400, summary: "The request's batch is larger than the model's maxBatchSize." },
  PERCH_ERR_INVALID_PARAMETER: { status: 400, summary: 'A request parameter has a value of the wrong type or range.' },

  // Files sent to models with processing steps (images, sounds).
  PERCH_ERR_MEDIA_UNSUPPORTED: { status: 415, summary: 'The Content-Type or the file is of a kind Perch does not decode, or the model takes no file.' },
  PERCH_ERR_EMPTY_INPUT: { status: 400, summary: 'The body, or the BYTES element holding the file, is empty (0 bytes).' },
  PERCH_ERR_IMAGE_INVALID: { status: 400, summary: 'The file is not a JPEG, PNG or WebP image, or it is truncated or corrupt.' },
  PERCH_ERR_IMAGE_TOO_LARGE: { status: 413, summary: "The image's header declares more pixels than the model's image.maxPixels, or than all images may hold at once (models.maxPixelsInFlight); it was refused before decoding." },
  PERCH_ERR_AUDIO_INVALID: { status: 400, summary: 'The file is not a WAV file, or it is truncated or corrupt.' },
  PERCH_ERR_AUDIO_UNSUPPORTED: { status: 415, summary: 'The WAV file is in a format Perch does not decode (only PCM 16-bit and float 32-bit), or is too long for the model.' },
  PERCH_ERR_PIPELINE_STEP_FAILED: { status: 500, summary: "A step of a model's processing failed in a way that is not the request's fault; the message names the step." },

  // Sequences (stateful models).
  PERCH_ERR_SEQUENCE_UNKNOWN: { status: 400, summary: 'No live sequence with that id: start it with sequence_start (it may have ended or idled out).' },
  PERCH_ERR_SEQUENCE_LIMIT: { status: 429, summary: "The model already holds its maximum number of live sequences (sequence.maxSequences), or the connection its maximum (server.maxSequencesPerConnection)." },
  PERCH_ERR_SEQUENCE_IN_USE: { status: 409, summary: 'A live sequence of that id belongs to another connection, whose sequences end with it (server.sequencesEndWithConnection): only that connection may feed, restart or end it.' },

  // Scheduling.
  PERCH_ERR_QUEUE_FULL: { status: 429, summary: "The model's queue holds maxQueueSize requests, or maxQueueBytes of input, already; or models.maxImagesWaiting images already wait for decoded-pixel room." },
  PERCH_ERR_OVERLOADED: { status: 429, summary: 'The bytes Perch holds for all clients (server.maxClientBytes) are spent: bodies, queued requests and unsent answers. Retry later.' },
  PERCH_ERR_TIMEOUT: { status: 504, summary: 'The request waited in the queue past its timeout and was not run.' },
  PERCH_ERR_CLIENT_GONE: { status: 499, summary: 'The client closed its connection before its answer: its queued work was dropped (counted in metrics; nobody receives this answer).' },
  PERCH_ERR_SHUTTING_DOWN: { status: 503, summary: 'The runtime is stopping and takes no new work.' },
  PERCH_ERR_INFERENCE_FAILED: { status: 500, summary: 'onnxruntime failed while running the batch, or the session thread running it died (it is started again).' },

  // Models in the repository.
  PERCH_ERR_MODEL_CONFIG_INVALID: { status: 500, summary: "A model's model.json is not valid JSON or breaks the model config schema." },
  PERCH_ERR_MODEL_CONFIG_MISMATCH: { status: 500, summary: "A model's model.json does not match the inputs and outputs of its ONNX file." },
  PERCH_ERR_MODEL_LOAD_FAILED: { status: 500, summary: 'onnxruntime could not create a session from the model file (corrupt or unsupported).' },
  PERCH_ERR_MODEL_WARMUP_FAILED: { status: 500, summary: 'The model loaded but its warm-up inference failed.' },
  PERCH_ERR_NO_VERSIONS: { status: 500, summary: 'The model folder has no version folder with a model.onnx that the version policy selects.' },

  // Durable store (SQLite in the data directory).
  PERCH_ERR_STORE_READONLY: { status: 503, summary: 'The data directory or database file is read-only: nothing can be made durable.' },
  PERCH_ERR_STORE_FULL: { status: 507, summary: 'The disk holding the data directory is full, or the outbox byte budget is spent by events that are never dropped (store.outbox.overflow).' },
  PERCH_ERR_STORE_UNAVAILABLE: { status: 503, summary: 'The store could not be opened or failed while writing.' },
  PERCH_ERR_STORE_LOCK_FAILED: { status: 503, summary: "perch.lock cannot be taken in a data directory Perch can write (a file Perch's user may not write, a directory by that name): Perch refuses to start rather than share the database with another process." },
  PERCH_ERR_STORE_CORRUPT: { status: 500, summary: 'The database file was corrupt: what could be read of it (outbox events, device state) was salvaged into a fresh one, and it was moved aside.' },
  PERCH_ERR_EVENT_TOO_LARGE: { status: 413, summary: 'The event payload is over the configured size limit.' },

  // Cloud sync: model updates, live config, MQTT (reported in state/reported, events, logs).
  PERCH_ERR_MODEL_DIGEST_MISMATCH: { status: 422, summary: "A downloaded model's SHA-256 is not the one its desired state names." },
  PERCH_ERR_MODEL_SIGNATURE_INVALID: { status: 422, summary: "A model's Ed25519 signature does not verify against any trusted key." },
  PERCH_ERR_MODEL_UNSIGNED: { status: 422, summary: 'A model came without a signature and unsigned models are not allowed.' },
  PERCH_ERR_MODEL_SIZE_MISMATCH: { status: 422, summary: 'A downloaded model is not the size its desired state names (truncated or padded).' },
  PERCH_ERR_MODEL_CHUNK_MISMATCH: { status: 502, summary: 'Chunks of a model download kept coming with wrong bytes (length, or SHA-256 in chunkDigests): one chunk more than 3 times, or more than 16 chunks; each was dropped and asked for again until then.' },
  PERCH_ERR_MODEL_DOWNLOAD_FAILED: { status: 502, summary: 'A model download could not complete (chunks missing or out of range).' },
  PERCH_ERR_MODEL_ROLLED_BACK: { status: 500, summary: 'A new model version failed too often in service and was rolled back to the previous one.' },
  PERCH_ERR_NO_PREVIOUS_VERSION: { status: 409, summary: 'Rollback asked for, but no previous version of the model is kept.' },
  PERCH_ERR_ROLLBACK_STALE: { status: 409, summary: 'A rollback command names a version of the model that is not the one serving (a replayed or delayed command); nothing was rolled back.' },
  PERCH_ERR_LIVE_CONFIG_INVALID: { status: 400, summary: 'A live config document breaks the config schema or names a setting that needs a restart; nothing of it was applied.' },
  PERCH_ERR_DESIRED_STALE: { status: 409, summary: "A desired document's version is not above the one the device applied (a replayed or out-of-date document); it was ignored." },
  PERCH_ERR_MQTT_PAYLOAD_INVALID: { status: 400, summary: 'An MQTT message is not valid JSON, breaks its schema, is oversized, or names something unknown; it was ignored.' },
  PERCH_ERR_BROKER_UNREACHABLE: { status: 503, summary: 'The MQTT broker could not be reached.' },
  PERCH_ERR_DEVICE_UNKNOWN: { status: 404, summary: 'The fleet has never heard from a device of that id.' },
  PERCH_ERR_FLEET_MODEL_MISSING: { status: 404, summary: 'The fleet store holds no such model version.' },
  PERCH_ERR_FLEET_CHUNK_SHARE_EXCEEDED: { status: 429, summary: 'A device asked fleet serve for more than its share of chunk answers (more requests than chunks sent to it, or more chunks waiting than --max-queued-chunks); the excess was dropped, and its agent asks again after its chunk timeout.' },
  PERCH_ERR_NO_DEVICES_SELECTED: { status: 404, summary: "A fleet command's --select or --all matched no device the fleet store knows." },
  PERCH_ERR_ROLLOUT_NOT_FOUND: { status: 404, summary: 'The fleet store holds no rollout of that id.' },
  PERCH_ERR_ROLLOUT_STATE: { status: 409, summary: 'The rollout is not in a state that allows this (pause of a completed rollout, resume of an aborted one).' },
  PERCH_ERR_RANGE_NOT_SATISFIABLE: { status: 416, summary: "A Range request to fleet serve's model HTTP server starts past the end of the model file." },
  PERCH_ERR_MODEL_TOO_LARGE: { status: 413, summary: 'A model update declares more bytes than cloud.download.maxModelBytes; refused before any chunk was asked for.' },
  PERCH_ERR_MODEL_CHUNK_SIZE_INVALID: { status: 422, summary: 'A model update cuts its file into more than 1,048,576 chunks or into chunks over 4 MiB (chunkSize is not signed); refused before any chunk was asked for.' },
  PERCH_ERR_MODEL_NO_SPACE: { status: 507, summary: 'The disk of the data directory lacks the space a model update needs (download, install copy and cloud.download.diskHeadroomBytes); refused before any chunk was asked for, or the disk filled during the download or the install copy (what was staged is removed). Not final: the device tries the update again once the disk would hold it.' },
  PERCH_ERR_MODEL_DOWNGRADE: { status: 409, summary: 'A desired document names a model version lower than the one served; going back is the rollback command or a new signed version.' },
  PERCH_ERR_MODEL_CONFIG_UNSIGNED: { status: 422, summary: 'A model update carries a model.json its signature does not cover (a manifest 1 signature, or none) and signatures are required.' },
  PERCH_ERR_SIGNING_KEY_INVALID: { status: 400, summary: 'The key given to sign models is not an Ed25519 private key.' },
  PERCH_ERR_CLIENT_ID_TAKEN: { status: 409, summary: "Another MQTT client connected with the device's client id and the broker closed the device's connection; the agent backs off before connecting again." },
  PERCH_ERR_DEVICE_UNREACHABLE: { status: 503, summary: "`perch status` could not reach the device's HTTP API (nothing listens at the URL, or it did not answer in time)." },

  // Start-up.
  PERCH_ERR_CONFIG_INVALID: { status: 500, summary: 'The runtime config (file or PERCH_* environment) is invalid.' },
  PERCH_ERR_API_TOKEN_UNAVAILABLE: { status: 500, summary: 'The API listens beyond loopback without server.apiToken, and the token file in the data directory could not be read or written.' },
  PERCH_ERR_PORT_IN_USE: { status: 500, summary: 'Another process already listens on the configured host and port (server.port, PERCH_PORT).' },
  PERCH_ERR_LISTEN_FAILED: { status: 500, summary: 'The server cannot listen on the configured host and port (the address is not on this machine, or the port needs privileges), or on a socket path (one that is not a socket, is over 107 bytes, or was replaced after Perch bound it).' },

  PERCH_ERR_INTERNAL: { status: 500, summary: 'A bug in Perch: the message says where.' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class PerchError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    // A client's error (status below 500) is built without a stack trace: the code and message
    // say what was wrong, where in Perch it was found says nothing more, and capturing the stack
    // cost 8-15 us per error, a fifth of the main thread under hostile clients whose every frame
    // is refused (docs/reliability.md "Control plane first"). Perch's own failures keep theirs.
    const limit = Error.stackTraceLimit;
    if (ERROR_CODES[code].status < 500) Error.stackTraceLimit = 0;
    try {
      super(message ?? ERROR_CODES[code].summary, options);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'PerchError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

/** Any thrown value as a PerchError; unknown errors become PERCH_ERR_INTERNAL with the cause kept. */
export function toPerchError(err: unknown): PerchError {
  if (err instanceof PerchError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PerchError('PERCH_ERR_INTERNAL', message, { cause: err });
}
