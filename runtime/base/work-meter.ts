// Work done for clients that the client budget does not see (docs/reliability.md "Memory after a
// burst"): the input bytes of every batch a session ran, and the pixels a pipeline decoded. A
// 128 KB PNG takes 128 KB of the client budget, yet its decode is 119 MB of RGB, pp-ocr-det's
// input from it 11 MB, and onnxruntime's arena grew by 150 MB for it; after a burst of such
// images nothing the budget saw made the idle collector collect, and the sessions kept their
// arenas (api/idle-collector.ts adds what this counts to the traffic it watches).
export class WorkMeter {
  private bytes = 0;

  /** `n` bytes of work were done (a batch's inputs, a picture's decoded pixels). */
  add(n: number): void {
    this.bytes += n;
  }

  /** The bytes added since the last call. */
  take(): number {
    const b = this.bytes;
    this.bytes = 0;
    return b;
  }
}
