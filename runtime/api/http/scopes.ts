// One client scope per HTTP connection (keep-alive socket), closed when the socket closes: the
// requests it queued are dropped, and with server.sequencesEndWithConnection.http its sequences
// end with it (docs/reliability.md).
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { ClientScope, type ScopeOptions } from '../../inference/client-scope.js';

export function httpScopes(options: ScopeOptions): (req: IncomingMessage) => ClientScope {
  const scopes = new WeakMap<Socket, ClientScope>();
  return (req) => {
    const socket = req.socket;
    let scope = scopes.get(socket);
    if (!scope) {
      const s = new ClientScope(options);
      scopes.set(socket, s);
      if (socket.destroyed) s.close();
      else socket.once('close', () => s.close());
      scope = s;
    }
    return scope;
  };
}
