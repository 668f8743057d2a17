import net from 'node:net';
import dimse from 'dcmjs-dimse';
import { DicomflowScp, type ScpContext } from './scp.ts';

// dcmjs-dimse logs every PDU at info level; our own structured logs say what matters.
dimse.log.setLevel('warn');

export interface DicomServer {
  port: number;
  listening(): boolean;
  close(): Promise<void>;
}

/**
 * Our own net server rather than dcmjs-dimse's Server: it binds the configured interface and
 * sets TCP_NODELAY, without which every response waits on Nagle's algorithm.
 */
export async function startDicomServer(
  ctx: ScpContext,
  options: { host: string; port: number; associationTimeoutMs: number; pduTimeoutMs: number },
): Promise<DicomServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A reset from the peer must end its association only, never the server.
    socket.on('error', (err) => ctx.log.debug({ err: err.message }, 'socket error'));
    try {
      new DicomflowScp(socket, ctx, options);
    } catch (err) {
      ctx.log.error({ err }, 'cannot set up association');
      socket.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as net.AddressInfo;
  return {
    port: address.port,
    listening: () => server.listening,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
