// A key given twice in one JSON object: JSON.parse keeps the last silently (RFC 8259 section 4
// leaves it to the reader), so an operator who wrote "maxBatchSize" twice in a config file or a
// model.json got the second without a word. Config files, model.json and desired documents are
// refused instead, naming the key's path (docs/config.md). JSON.parse cannot tell (a reviver sees
// the object already built), so the text is scanned once more: one pass, no recursion, memory the
// size of the keys of the objects open at once. Called only on text JSON.parse has taken.

/** Where a duplicate key is: its path, as config errors name paths (`server.port`, `models.overrides.vad.batching`). */
export function duplicateKeyPath(text: string): string[] | null {
  // One frame per open object or array: the object's keys so far and the key being read, or the array's index.
  const open: Array<{ keys: Set<string>; key: string | null } | { index: number }> = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i++;
        } else if (d === 0x22) break;
      }
      const top = open.at(-1);
      if (expectKey && top !== undefined && 'keys' in top) {
        // A key spelled with escapes ("a\u0062") is the same key as one without ("ab").
        const key = escaped ? (JSON.parse(text.slice(start, i + 1)) as string) : text.slice(start + 1, i);
        if (top.keys.has(key)) return [...pathOf(open.slice(0, -1)), key];
        top.keys.add(key);
        top.key = key;
        expectKey = false;
      }
    } else if (c === 0x7b /* { */) {
      open.push({ keys: new Set(), key: null });
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      open.push({ index: 0 });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
      expectKey = false;
    } else if (c === 0x3a /* : */) {
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      const top = open.at(-1);
      if (top !== undefined && 'keys' in top) expectKey = true;
      else if (top !== undefined) top.index++;
    }
  }
  return null;
}

function pathOf(frames: ReadonlyArray<{ key: string | null } | { index: number }>): string[] {
  return frames.map((f) => ('index' in f ? String(f.index) : (f.key ?? '')));
}

/** `text`'s duplicate key as a sentence for an error message, or null. */
export function duplicateKeyProblem(text: string): string | null {
  const path = duplicateKeyPath(text);
  return path === null ? null : `${path.join('.')}: key given twice (JSON keeps only the last; write it once)`;
}
