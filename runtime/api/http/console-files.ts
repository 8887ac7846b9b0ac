// The web console's static files (docs/api.md "Web console"): `/` is console/index.html, and
// `/console/<name>` the other files of the package's console/ folder. Only names listed when the
// server starts are served (one folder, no subfolders, no dot files), so no request path can
// reach another file; content types are fixed per extension. Read on request (the console is
// about 40 KB), revalidated with an ETag.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { PerchError } from '../../base/errors.js';
import { packageRoot } from '../../base/package-root.js';

const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
  ico: 'image/x-icon',
};

/** The page may load only its own files and talk only to its own device. */
const HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-frame-options': 'DENY',
};

export class ConsoleFiles {
  private readonly files: ReadonlyMap<string, string>;

  constructor(readonly dir = join(packageRoot(), 'console')) {
    const files = new Map<string, string>();
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      // a build without the console: every console path is a 404
    }
    for (const name of names) {
      const ext = /^[a-z0-9][a-z0-9-]*\.([a-z]+)$/.exec(name)?.[1];
      if (ext !== undefined && TYPES[ext] !== undefined) files.set(name, TYPES[ext]);
    }
    this.files = files;
  }

  /** The names served (tests; docs/api.md states the console's size). */
  get names(): string[] {
    return [...this.files.keys()];
  }

  serve(req: IncomingMessage, res: ServerResponse, name: string): void {
    const type = this.files.get(name);
    if (type === undefined) throw new PerchError('PERCH_ERR_ROUTE_NOT_FOUND', `no console file '${name.slice(0, 64)}'`);
    const path = join(this.dir, name);
    let body: Buffer;
    let etag: string;
    try {
      const st = statSync(path);
      etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
      body = readFileSync(path);
    } catch {
      throw new PerchError('PERCH_ERR_ROUTE_NOT_FOUND', `console file '${name}' is gone`);
    }
    // Revalidated on each load, so a new version of Perch shows its new console at once.
    const headers = { ...HEADERS, 'content-type': type, 'cache-control': 'no-cache', etag };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': body.length });
    res.end(body);
  }
}
