// How a model file may be cut into chunks (docs/protocol.md section 5, docs/cloud-sync.md
// "Checked before the download"). A ModelSpec's `chunkSize` is not signed (the signature covers
// what the device serves, not how the bytes travel), so whoever can write a device's desired
// document can change it on a validly signed spec. Every chunk costs the device a journal record,
// a set entry and a share of a request, and each chunk is held whole in memory until it is
// durable (`cloud.download.windowChunks` of them at a time): both are bounded here, for the
// device (refused before any chunk is asked for) and for `perch fleet` (refused at sign or push).

/** Chunks of one model file, at most: a 2 GiB model needs chunks of 2 KiB or more. */
export const MAX_MODEL_CHUNKS = 1024 * 1024;
/** Bytes of one chunk, at most (fleet's default is 64 KiB). */
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

/** Why a file of `size` bytes in chunks of `chunkSize` is refused, or null when it is not. */
export function chunkingProblem(size: number, chunkSize: number): string | null {
  const chunks = Math.ceil(size / chunkSize);
  if (chunks > MAX_MODEL_CHUNKS) return `chunkSize ${chunkSize} cuts ${size} bytes into ${chunks} chunks, over ${MAX_MODEL_CHUNKS}`;
  // A chunk is never larger than the file: a small model in one chunk of a large chunkSize is fine.
  if (Math.min(size, chunkSize) > MAX_CHUNK_BYTES) return `chunkSize ${chunkSize} is over ${MAX_CHUNK_BYTES} bytes`;
  return null;
}
