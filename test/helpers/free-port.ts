// A free loopback port for a server a test starts (or for one that must refuse connections).
import { createServer } from 'node:net';

/** A port the OS just handed out on 127.0.0.1; the caller retries if someone else grabs it first. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
