/**
 * A TCP proxy in front of a Redis that can lose one reply on purpose: armed
 * with `loseReplyTo(marker)`, the next command whose bytes contain `marker`
 * goes through to Redis (so it runs), and its reply never comes back: the
 * proxy drops it and cuts that connection. What a client then sees is a
 * command whose outcome it never learned -- the case CLIENT KILL can only
 * hit by luck.
 */
import net from 'node:net';

export interface LossyProxy {
  url: string;
  /** Resolves once a reply to a command containing `marker` has been lost. */
  loseReplyTo(marker: string | Buffer): Promise<void>;
  close(): Promise<void>;
}

export async function lossyProxy(target: { host: string; port: number }): Promise<LossyProxy> {
  let armed: { marker: Buffer; lost: () => void } | undefined;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    sockets.add(client).add(upstream);
    let losing: (() => void) | undefined;
    client.on('data', (d: Buffer) => {
      if (armed && d.includes(armed.marker)) {
        losing = armed.lost;
        armed = undefined;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!losing) {
        client.write(d);
        return;
      }
      // Redis ran the command and replied: drop the reply, cut the connection.
      client.destroy();
      upstream.destroy();
      losing();
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    loseReplyTo: (marker) =>
      new Promise<void>(
        (lost) =>
          (armed = { marker: Buffer.isBuffer(marker) ? marker : Buffer.from(marker), lost }),
      ),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
