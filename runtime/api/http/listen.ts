// Listening on a TCP port, with the errors an operator can act on. Its own module: the control
// listener's thread (control/worker.ts) uses it without loading the inference routes.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PerchError } from '../../base/errors.js';

/**
 * Starts listening. A port taken by another process, an address that is not on this machine or a
 * port that needs privileges is the operator's to fix, not a bug: each gets its own code and a
 * sentence that names the address.
 */
export function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => {
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      if (err.code === 'EADDRINUSE') {
        reject(new PerchError('PERCH_ERR_PORT_IN_USE', `port ${port} on ${host} is already in use by another process: stop it, or give Perch another port (server.port, PERCH_PORT)`, { cause: err }));
      } else if (err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
        reject(new PerchError('PERCH_ERR_LISTEN_FAILED', `cannot listen on ${where}: ${err.code === 'EACCES' ? 'the port needs privileges; choose a port above 1023' : 'that address is not on this machine'} (server.host, server.port)`, { cause: err }));
      } else {
        reject(err);
      }
    };
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve(server.address() as AddressInfo);
    });
  });
}
