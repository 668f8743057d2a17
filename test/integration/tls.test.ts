// Issue 8, transport security: DICOM TLS on the SCP (PS3.15 B.1) tested with DCMTK's TLS options,
// mutual TLS with a throwaway CA, calling-AE allow-lists and User Identity Negotiation
// (PS3.7 D.3.3.7) over it; the SCU side presenting its own certificate to a TLS storescp.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import { sendFiles, tlsOptionsForNode } from '../../server/dimse/store-scu.ts';
import { ctSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { echoscu, hasTool, storescu } from '../helpers/dcmtk.ts';
import { startStorescp } from '../helpers/dcmtk-peers.ts';
import { freePort, waitForPort } from '../helpers/net.ts';
import { readPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { makeTestPki, type TestPki } from '../helpers/tls-certs.ts';

const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c();
});

let pki: TestPki;
let series: BuiltSeries;
beforeAll(async () => {
  pki = makeTestPki();
  series = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32 });
});

/** DCMTK's TLS client options: our key and certificate, the CA it trusts, no key password. */
const tlsArgs = (key: string, cert: string, ca: string) => ['+tls', key, cert, '-pw', '+cf', ca];

describe.skipIf(!hasTool('storescu'))('DICOM TLS on the SCP', () => {
  it('takes storescu +tls and echoscu +tls with a client certificate of its CA, from allowed callers only; refuses anonymous, foreign and untrusting peers', async () => {
    const tlsPort = await freePort();
    const s = await startTestServer({
      dimse: {
        tls: { port: tlsPort, certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caCert, requireClientCertificate: true },
        allowedCallers: [{ aeTitle: 'MODALITY' }],
      },
    });
    closers.push(() => s.close());
    const mine = tlsArgs(pki.clientKey, pki.clientCert, pki.caCert);

    const echo = await echoscu([...mine, '-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(tlsPort)]);
    expect(echo.code, echo.stderr).toBe(0);
    const store = await storescu([...mine, '-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(tlsPort), ...series.files]);
    expect(store.code, store.stderr).toBe(0);
    await s.engine.idle();
    const rows = await s.index.instances('Import', {});
    expect(rows.map((r) => r.instance.SOPInstanceUID).sort()).toEqual([...series.sopInstanceUids].sort());
    // Byte for byte, as over plain TCP.
    for (const row of rows) {
      const sent = await readPart10(series.files[series.sopInstanceUids.indexOf(row.instance.SOPInstanceUID)]);
      const kept = await readPart10(s.objects.absolutePath(row.objectPath));
      expect(kept.dataset.equals(sent.dataset)).toBe(true);
    }

    // A calling AE title not on the list: TLS is fine, the association is rejected.
    const stranger = await echoscu([...mine, '-aet', 'INTRUDER', '-aec', 'DICOMFLOW', '127.0.0.1', String(tlsPort)]);
    expect(stranger.code).not.toBe(0);
    expect(stranger.stdout + stderrOf(stranger)).toMatch(/Association Rejected|Calling AE Title Not Recognized/i);
    // No client certificate, or one of another CA: no handshake.
    const anonymous = await echoscu(['+tla', '+cf', pki.caCert, '-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(tlsPort)]);
    expect(anonymous.code).not.toBe(0);
    const foreign = await echoscu([
      ...tlsArgs(pki.strangerKey, pki.strangerCert, pki.caCert),
      '-aet',
      'MODALITY',
      '-aec',
      'DICOMFLOW',
      '127.0.0.1',
      String(tlsPort),
    ]);
    expect(foreign.code).not.toBe(0);
    // A client that does not trust the server's CA gives up itself.
    const untrusting = await echoscu([
      ...tlsArgs(pki.clientKey, pki.clientCert, pki.strangerCaCert),
      '-aet',
      'MODALITY',
      '-aec',
      'DICOMFLOW',
      '127.0.0.1',
      String(tlsPort),
    ]);
    expect(untrusting.code).not.toBe(0);
    // Plain DICOM to the TLS port is no handshake either; the plain port still serves.
    expect((await echoscu(['-aet', 'MODALITY', '-aec', 'DICOMFLOW', '-to', '5', '-ta', '5', '127.0.0.1', String(tlsPort)])).code).not.toBe(
      0,
    );
    expect((await echoscu(['-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort)])).code).toBe(0);
    const status = await fetch(`http://127.0.0.1:${s.httpPort}/api/status`, { headers: { authorization: `Bearer ${s.adminToken}` } }).then(
      (r) => r.json(),
    );
    expect(status.dicom.associations.rejected).toBeGreaterThanOrEqual(4);
  }, 120_000);

  it('with "only", opens no plain port', async () => {
    const tlsPort = await freePort();
    const plainPort = await freePort();
    const s = await startTestServer({
      dimse: { port: plainPort, tls: { port: tlsPort, certFile: pki.serverCert, keyFile: pki.serverKey, only: true } },
    });
    closers.push(() => s.close());
    expect(s.dicomPort).toBe(tlsPort);
    await expect(waitForPort(plainPort, '127.0.0.1', 500)).rejects.toThrow();
    // No client certificate required here: DCMTK's anonymous TLS works.
    const echo = await echoscu(['+tla', '+cf', pki.caCert, '-aec', 'DICOMFLOW', '127.0.0.1', String(tlsPort)]);
    expect(echo.code, echo.stderr).toBe(0);
  }, 60_000);
});

describe.skipIf(!hasTool('storescu'))('user identity negotiation', () => {
  it('requires a configured user and its API token as passcode, records the user with each arrival, and answers a requested positive response', async () => {
    const tlsPort = await freePort();
    const s = await startTestServer({
      users: [{ name: 'alice', role: 'operator' }],
      dimse: {
        requireUserIdentity: 'passcode',
        tls: { port: tlsPort, certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caCert, requireClientCertificate: true },
      },
    });
    closers.push(() => s.close());
    const { token } = await issueToken(s.tokens, s.users, 'alice', 'modality');
    const at = ['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort)];

    const ok = await storescu(['--user', 'alice', '--password', token, '-aet', 'CT1', ...at, series.files[0]]);
    expect(ok.code, ok.stderr).toBe(0);
    const positive = await storescu(['--user', 'alice', '--password', token, '--pos-response', '-aet', 'CT1', ...at, series.files[1]]);
    expect(positive.code, positive.stdout + positive.stderr).toBe(0);
    // Over TLS with mutual authentication too.
    const overTls = await storescu([
      ...tlsArgs(pki.clientKey, pki.clientCert, pki.caCert),
      '--user',
      'alice',
      '--password',
      token,
      '-aet',
      'CT1',
      '-aec',
      'DICOMFLOW',
      '127.0.0.1',
      String(tlsPort),
      series.files[2],
    ]);
    expect(overTls.code, overTls.stderr).toBe(0);
    await s.engine.idle();
    const rows = await s.index.connection.all<{ user: string }>("SELECT user_name AS user FROM arrivals WHERE source = 'network'");
    expect(rows.map((r) => r.user)).toEqual(['alice', 'alice', 'alice']);

    for (const [what, args] of [
      ['no identity', []],
      ['a wrong passcode', ['--user', 'alice', '--password', `${token}x`]],
      ['an unknown user', ['--user', 'mallory', '--password', token]],
      ['a user name only', ['--user', 'alice']],
      ['an empty passcode', ['--user', 'alice', '--empty-password']],
    ] as const) {
      const r = await storescu([...args, '-aet', 'CT1', ...at, series.files[0]]);
      expect(r.code, what).not.toBe(0);
      expect(r.stdout + r.stderr, what).toMatch(/Association Rejected/i);
    }
  }, 120_000);

  it('with "username", a configured user name is enough', async () => {
    const s = await startTestServer({ users: [{ name: 'ct-scanner', role: 'operator' }], dimse: { requireUserIdentity: 'username' } });
    closers.push(() => s.close());
    const at = ['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort)];
    // echoscu has no --user: storescu does.
    expect((await storescu(['--user', 'ct-scanner', ...at, series.files[0]])).code).toBe(0);
    expect((await storescu(['--user', 'someone', ...at, series.files[0]])).code).not.toBe(0);
    expect((await storescu([...at, series.files[0]])).code).not.toBe(0);
  }, 60_000);
});

describe.skipIf(!hasTool('storescp'))('DICOM TLS on the SCU', () => {
  it('sends to a storescp +tls that requires a client certificate, with the node’s CA, certificate and key', async () => {
    const peer = await startStorescp({ args: ['+tls', pki.serverKey, pki.serverCert, '-pw', '+cf', pki.caCert, '--require-peer-cert'] });
    closers.push(() => peer.stop());
    const node = { tls: true, tlsCaFile: pki.caCert, tlsCertFile: pki.clientCert, tlsKeyFile: pki.clientKey };
    const address = { host: '127.0.0.1', port: peer.port, callingAeTitle: 'DICOMFLOW', calledAeTitle: peer.aeTitle };
    const results = await sendFiles({ ...address, tls: tlsOptionsForNode(node), files: series.files });
    expect(results.map((r) => r.outcome)).toEqual(['success', 'success', 'success']);
    expect(fs.readdirSync(peer.dir)).toHaveLength(3);
    // Without our certificate, the peer refuses the handshake; with the system CAs, we refuse its certificate.
    const noCert = await sendFiles({
      ...address,
      tls: tlsOptionsForNode({ tls: true, tlsCaFile: pki.caCert }),
      files: series.files.slice(0, 1),
    });
    expect(noCert[0].outcome).toBe('error');
    const systemCas = await sendFiles({
      ...address,
      tls: tlsOptionsForNode({ tls: true, tlsCertFile: pki.clientCert, tlsKeyFile: pki.clientKey }),
      files: series.files.slice(0, 1),
    });
    expect(systemCas[0].outcome).toBe('error');
    expect(String((systemCas[0] as { error?: Error }).error?.message)).toMatch(/DF_ERR_PEER_UNREACHABLE|certificate/i);
    expect(path.isAbsolute(peer.dir)).toBe(true);
  }, 60_000);
});

describe.skipIf(!hasTool('storescp'))('routing over DICOM TLS', () => {
  it('the outbox delivers to a storescp +tls requiring a client certificate, with the node’s TLS files', async () => {
    const peer = await startStorescp({
      aeTitle: 'SECUREPACS',
      args: ['+tls', pki.serverKey, pki.serverCert, '-pw', '+cf', pki.caCert, '--require-peer-cert'],
    });
    closers.push(() => peer.stop());
    const pipelines = tempDir('df-tls-route-');
    fs.writeFileSync(
      path.join(pipelines, 'forward.json'),
      JSON.stringify({
        name: 'forward',
        trigger: { on: 'instance' },
        steps: [{ plugin: 'route', options: { destination: 'SECUREPACS' } }],
      }),
    );
    const s = await startTestServer({
      pipelinesDir: pipelines,
      defaultPipeline: false,
      remoteNodes: [
        {
          aeTitle: 'SECUREPACS',
          host: '127.0.0.1',
          port: peer.port,
          tls: true,
          tlsCaFile: pki.caCert,
          tlsCertFile: pki.clientCert,
          tlsKeyFile: pki.clientKey,
        },
      ],
    });
    closers.push(() => s.close());
    const sent = await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...series.files]);
    expect(sent.code, sent.stderr).toBe(0);
    const deadline = Date.now() + 20_000;
    while (
      (await s.outbox.status()).find((d) => d.destination === 'SECUREPACS')?.delivered !== series.files.length &&
      Date.now() < deadline
    )
      await new Promise((r) => setTimeout(r, 200));
    expect((await s.outbox.status()).find((d) => d.destination === 'SECUREPACS')).toMatchObject({ delivered: series.files.length });
    const arrived = fs.readdirSync(peer.dir).filter((n) => !n.startsWith('.'));
    expect(arrived).toHaveLength(series.files.length);
    for (const name of arrived) expect((await readPart10(path.join(peer.dir, name))).dataset.length).toBeGreaterThan(0);
  }, 60_000);
});

describe('HTTPS for the API', () => {
  it('serves the API over TLS with http.tls, and its bearer tokens still rule', async () => {
    const s = await startTestServer({ http: { tls: { certFile: pki.serverCert, keyFile: pki.serverKey } } });
    closers.push(() => s.close());
    const get = (url: string, token?: string, ca: string = pki.caCert) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = https.get(url, { ca: fs.readFileSync(ca), headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
      });
    const base = `https://localhost:${s.httpPort}`;
    expect((await get(`${base}/api/health`)).status).toBe(200);
    expect((await get(`${base}/api/status`)).status).toBe(401);
    const status = await get(`${base}/api/status`, s.adminToken);
    expect(status.status).toBe(200);
    expect(JSON.parse(status.body).dicom.port).toBe(s.dicomPort);
    // A client that does not trust the CA refuses the server; plain HTTP gets no API.
    await expect(get(`${base}/api/health`, undefined, pki.strangerCaCert)).rejects.toThrow(/certificate/i);
    const plain = await fetch(`http://127.0.0.1:${s.httpPort}/api/health`).then(
      (r) => r.status,
      (e: Error) => e.message,
    );
    expect(plain).not.toBe(200);
    // The CLI finds it through server.json and speaks HTTPS, trusting the CA it is given.
    const cli = await promisify(execFile)(
      path.resolve(import.meta.dirname, '../../node_modules/.bin/node'),
      [path.resolve(import.meta.dirname, '../../server/cli.ts'), 'jobs', '--data', s.config.dataDir, '--json'],
      {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.caCert, DICOMFLOW_TOKEN: s.adminToken },
        timeout: 30_000,
      },
    );
    expect(JSON.parse(cli.stdout)).toEqual(expect.any(Array));
    // It did ask the server (the data directory itself takes no token): a wrong token is refused.
    const refused = await promisify(execFile)(
      path.resolve(import.meta.dirname, '../../node_modules/.bin/node'),
      [path.resolve(import.meta.dirname, '../../server/cli.ts'), 'jobs', '--data', s.config.dataDir, '--json'],
      {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.caCert, DICOMFLOW_TOKEN: 'dft_forged' },
        timeout: 30_000,
      },
    ).then(
      () => 'accepted',
      (err: { stderr?: string }) => err.stderr ?? 'failed',
    );
    expect(refused).toMatch(/DF_ERR_UNAUTHORIZED/);
  }, 60_000);
});

function stderrOf(r: { stderr: string }): string {
  return r.stderr;
}
