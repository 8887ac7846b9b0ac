// A TCP proxy between the device and the broker: the "bad network" of docs/design.md house style 9. It can
// hold back everything the broker sends (so PUBACKs never reach the device) and let it through
// again later.
import { createServer, connect, type Socket } from 'node:net';

export interface HoldingProxy {
  url: string;
  /** While true, bytes from the broker to the device are buffered, not delivered. */
  hold(on: boolean): void;
  /** Bytes from the broker held back so far (and not yet let through). */
  heldBytes(): number;
  close(): Promise<void>;
}

export async function startProxy(brokerPort: number): Promise<HoldingProxy> {
  let holding = false;
  const held: { sock: Socket; data: Buffer }[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: brokerPort });
    sockets.add(client).add(upstream);
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => {
      if (holding) held.push({ sock: client, data: d });
      else client.write(d);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    hold(on) {
      holding = on;
      if (!on) for (const h of held.splice(0)) if (!h.sock.destroyed) h.sock.write(h.data);
    },
    heldBytes: () => held.reduce((n, h) => n + h.data.byteLength, 0),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
