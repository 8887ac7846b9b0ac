// Unix domain sockets for apps on the same device (server.socketPath, server.grpcSocketPath;
// docs/config.md). A socket file left by a process that died (SIGKILL, power cut) would make
// listen fail with EADDRINUSE forever: a socket file nobody answers on is stale and removed;
// one something answers on belongs to a live process and is left alone; a path that is not a
// socket is never removed (it is someone's file).
import { chmodSync, closeSync, constants, fstatSync, lstatSync, openSync, unlinkSync } from 'node:fs';
import { connect, type Server } from 'node:net';
import { PerchError } from '../base/errors.js';

/**
 * sockaddr_un's sun_path is 108 bytes with the NUL: libuv (1.46, Node 20) silently cuts a longer
 * path and binds the cut one, a file nobody configured (and that stop never removes).
 */
const MAX_SOCKET_PATH_BYTES = 107;

export async function prepareSocketPath(path: string, key: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new PerchError('PERCH_ERR_LISTEN_FAILED', `${path} (${key}) is ${Buffer.byteLength(path)} bytes; a Unix socket path may have at most ${MAX_SOCKET_PATH_BYTES}`);
  }
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

// open(2)'s O_PATH (Linux; the same number on x86-64, arm64 and arm): a handle on the inode a
// name points to without opening it (a socket cannot be opened). Not in Node's fs.constants.
const O_PATH = 0o10000000;

/**
 * server.socketMode: who may connect (the directory's permissions guard it too). chmod(2) by
 * name follows a symbolic link, and between bind and chmod anyone who may write to the socket's
 * directory can replace the file by a link to, say, /etc/shadow, which Perch would then chmod
 * (libuv's uv_pipe_chmod, behind Node's readableAll/writableAll, does the same chmod by name, and
 * fchmod on the listening fd changes the socket, not the file, on Node 20's libuv). So the name
 * is resolved once, without following a link (O_PATH|O_NOFOLLOW), the inode checked (a socket,
 * Perch's own), and the mode set on that inode through /proc/self/fd: a name swapped in between
 * is refused, never followed (docs/security.md).
 */
export function setSocketMode(path: string, mode: number, key: string): void {
  if (process.platform !== 'linux') {
    // No O_PATH: lstat narrows the window to between two calls (Perch ships for Linux).
    if (!lstatSync(path).isSocket()) throw replaced(path, key, 'not a socket');
    chmodSync(path, mode);
    return;
  }
  let fd: number;
  try {
    fd = openSync(path, O_PATH | constants.O_NOFOLLOW);
  } catch (err) {
    throw replaced(path, key, (err as Error).message);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isSocket()) throw replaced(path, key, st.isSymbolicLink() ? 'a symbolic link' : 'not a socket');
    const uid = process.geteuid?.();
    if (uid !== undefined && st.uid !== uid) throw replaced(path, key, `a socket of uid ${st.uid}`);
    chmodSync(`/proc/self/fd/${fd}`, mode);
  } finally {
    closeSync(fd);
  }
}

function replaced(path: string, key: string, what: string): PerchError {
  return new PerchError('PERCH_ERR_LISTEN_FAILED', `${path} (${key}) was replaced after Perch bound it (now ${what}); its mode was not set and Perch does not listen there`);
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
  setSocketMode(path, mode, key);
}
