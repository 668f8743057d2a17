import net from 'node:net';
import tls from 'node:tls';
import dimse from 'dcmjs-dimse';
import type { DimseTimeouts } from './association-timers.ts';
import { DicomflowScp, type ScpContext } from './scp.ts';

// dcmjs-dimse logs every PDU at info level; our own structured logs say what matters.
dimse.log.setLevel('warn');

export interface DicomServer {
  /** The plain port, or the TLS port when only TLS listens. */
  port: number;
  /** The DICOM TLS port, when configured. */
  tlsPort: number | undefined;
  listening(): boolean;
  close(): Promise<void>;
}

export interface DicomTlsListener {
  port: number;
  key: Buffer;
  cert: Buffer;
  ca?: Buffer;
  requireClientCertificate: boolean;
  /** Without it, only the TLS port is opened. */
  plain: boolean;
}

/**
 * Our own net (and tls) servers rather than dcmjs-dimse's Server: they bind the configured
 * interface and set TCP_NODELAY, without which every response waits on Nagle's algorithm. A TLS
 * socket is a net.Socket once its handshake is done, so the association code is the same.
 */
export async function startDicomServer(
  ctx: ScpContext,
  options: { host: string; port: number; timeouts: DimseTimeouts; tls?: DicomTlsListener },
): Promise<DicomServer> {
  const sockets = new Set<net.Socket>();
  const onConnection = (socket: net.Socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // A reset from the peer must end its association only, never the server.
    socket.on('error', (err) => ctx.log.debug({ err: err.message }, 'socket error'));
    try {
      new DicomflowScp(socket, ctx, options.timeouts);
    } catch (err) {
      ctx.log.error({ err }, 'cannot set up association');
      socket.destroy();
    }
  };
  const servers: net.Server[] = [];
  const listen = async (server: net.Server, port: number): Promise<number> => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, options.host, () => resolve());
    });
    servers.push(server);
    return (server.address() as net.AddressInfo).port;
  };

  const t = options.tls;
  const plainPort = !t || t.plain ? await listen(net.createServer(onConnection), options.port) : undefined;
  let tlsPort: number | undefined;
  if (t) {
    const server = tls.createServer(
      {
        key: t.key,
        cert: t.cert,
        ca: t.ca,
        requestCert: t.requireClientCertificate,
        rejectUnauthorized: t.requireClientCertificate,
        // PS3.15 B.1 and BCP 195: TLS 1.2 at least.
        minVersion: 'TLSv1.2',
        // A handshake is part of setting up the association: ARTIM bounds it too.
        handshakeTimeout: options.timeouts.artimMs,
      },
      onConnection,
    );
    server.on('tlsClientError', (err, socket) => {
      ctx.stats.rejected++;
      ctx.log.warn(
        { code: 'DF_ERR_TLS_REFUSED', peer: socket.remoteAddress?.replace(/^::ffff:/, ''), peerPort: socket.remotePort, err: err.message },
        'TLS handshake refused',
      );
    });
    tlsPort = await listen(server, t.port);
  }
  return {
    port: plainPort ?? tlsPort!,
    tlsPort,
    listening: () => servers.every((s) => s.listening),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        let open = servers.length;
        if (open === 0) resolve();
        for (const s of servers) s.close(() => --open === 0 && resolve());
      }),
  };
}
