// Unix domain sockets for apps on the same device (server.socketPath, server.grpcSocketPath;
// docs/config.md). A socket file left by a process that died (SIGKILL, power cut) would make
// listen fail with EADDRINUSE forever: a socket file nobody answers on is stale and removed;
// one something answers on belongs to a live process and is left alone; a path that is not a
// socket is never removed (it is someone's file).
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { PerchError } from '../base/errors.js';

export async function prepareSocketPath(path: string, key: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new PerchError('PERCH_ERR_LISTEN_FAILED', `cannot use ${path} (${key}): ${(err as Error).message}`, { cause: err });
  }
  if (!isSocket) throw new PerchError('PERCH_ERR_LISTEN_FAILED', `${path} (${key}) exists and is not a socket; Perch does not remove it`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'));
  });
  if (live) throw new PerchError('PERCH_ERR_PORT_IN_USE', `another process listens on ${path} (${key})`);
  unlinkSync(path);
}

/** server.socketMode: who may connect (the directory's permissions guard it too). */
export function setSocketMode(path: string, mode: number): void {
  chmodSync(path, mode);
}

/** On stop: the socket file goes with the listener (a live one is never left behind). */
export function removeSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // already gone
  }
}

/** '0660' -> 0o660 (server.socketMode is an octal string, as chmod takes it). */
export function parseSocketMode(mode: string): number {
  return parseInt(mode, 8);
}

/** Listens on a socket path (stale file handled), then sets its mode. */
export async function listenOnSocket(server: Server, path: string, key: string, mode: number): Promise<void> {
  await prepareSocketPath(path, key);
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      reject(err.code === 'EADDRINUSE'
        ? new PerchError('PERCH_ERR_PORT_IN_USE', `another process listens on ${path} (${key})`, { cause: err })
        : new PerchError('PERCH_ERR_LISTEN_FAILED', `cannot listen on ${path} (${key}): ${err.message}`, { cause: err }));
    };
    server.once('error', fail);
    server.listen(path, () => {
      server.off('error', fail);
      resolve();
    });
  });
  setSocketMode(path, mode);
}
