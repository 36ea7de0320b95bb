import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { connectionFor, runUdpSession } from '../../client/sdk/session';
import type { TransferSpec } from '../../contracts';
import { BucketGuard } from '../../core/bucket-guard';
import { createDocumentClient } from '../../core/clients';
import { PartRepository } from '../../core/state/parts';
import { TransferRepository } from '../../core/state/transfers';
import { Keyring } from '../../core/token';
import { addressKey, ConnectionDriver } from '../../core/udp-driver';
import type { Logger } from '../../engine-service/log';
import { EngineServer } from '../../engine-service/server';
import { earlyCreditBytes } from '../../engine-service/session';
import { CloseCode, Connection } from '../../protocol/connection';
import { PacketType, connectionIdBytes, encodeClientHello, protocolVersion } from '../../protocol/packet';
import { checksumOf, decodeControl, encodeControl, type ControlMessage } from '../../protocol/transfer';
import { createTestApi, type TestApi } from '../support/harness';
import { createBucket, readObject, testBytes } from '../support/s3';

/**
 * The engine in-process against s3rver and dynalite, with the session-start storage calls counted: token
 * replays (a sealed token is a bearer credential) must not fill the session table, touch storage or get
 * more than a ServerHello (twice) each; refused hellos must not flood the log; /health reports why. And
 * data that comes on the ServerHello's credit before the engine knows the manifest is held, not refused.
 */
const unprovenTimeoutMs = 1_000;
const maxUnprovenSessions = 4;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-hardening-'));
let api: TestApi;
let bucket: string;
let engine: EngineServer;
let guard: BucketGuard;
let transfers: TransferRepository;
const logLines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
const log: Logger = {
  info: (msg, fields = {}) => logLines.push({ level: 'info', msg, fields }),
  warn: (msg, fields = {}) => logLines.push({ level: 'warn', msg, fields }),
  error: (msg, fields = {}) => logLines.push({ level: 'error', msg, fields }),
};

beforeAll(async () => {
  api = await createTestApi();
  bucket = await createBucket(inject('s3rver'));
  const { config } = api.deps;
  const db = createDocumentClient(config);
  guard = new BucketGuard(api.deps.s3);
  transfers = new TransferRepository(db, config.tableName);
  engine = new EngineServer(
    {
      host: '127.0.0.1',
      port: 0,
      healthHost: '127.0.0.1',
      healthPort: 0,
      keyring: Keyring.fromJson((config.tokenKeys as { json: string }).json),
      maxSessions: 64,
      maxUnprovenSessions,
      unprovenTimeoutMs,
      drainTimeoutMs: 100,
    },
    { s3: api.deps.s3, parts: new PartRepository(db, config.tableName), transfers, guard, log, maxBufferedBytes: 16 * 1024 * 1024 },
    log,
  );
  await engine.start();
});

afterAll(async () => {
  await engine?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function uploadSpec(name: string, size: number): Promise<TransferSpec> {
  const res = await api.call('/files/upload_setup', {
    method: 'POST',
    json: { transfer_requests: [{ transfer_request: { paths: [{ source: name, size }], destination_root: `/${name}-dir`, slipstream: { bucket } } }] },
  });
  const body = (await res.json()) as { transfer_specs: { transfer_spec: TransferSpec }[] };
  return { ...body.transfer_specs[0]!.transfer_spec, fasp_port: engine.udpPort };
}

async function health(): Promise<Record<string, number | string>> {
  return (await (await fetch(`http://127.0.0.1:${engine.healthPort}/health`)).json()) as Record<string, number | string>;
}

/** A socket that sends hellos and records every datagram the engine sends back. */
async function replayer(): Promise<{ socket: Socket; replies: Buffer[]; sentBytes: number; hello(token: string): void }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const r = {
    socket,
    replies: [] as Buffer[],
    sentBytes: 0,
    hello(token: string) {
      const bytes = encodeClientHello({ version: protocolVersion, clientConnectionId: randomBytes(connectionIdBytes), clientNonce: randomBytes(16), token });
      r.sentBytes += bytes.length;
      socket.send(bytes, engine.udpPort, '127.0.0.1');
    },
  };
  socket.on('message', (bytes) => r.replies.push(bytes));
  return r;
}

/** A bound socket and a client connection for `spec`, not yet driven. */
async function clientFor(spec: TransferSpec): Promise<{ socket: Socket; conn: Connection }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, conn: connectionFor(spec, addressKey('127.0.0.1', engine.udpPort)) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const quiet = () => ({ onProgress: () => undefined, onStatus: () => undefined, attach: () => undefined, signal: new AbortController().signal });

describe('the engine against replayed tokens', () => {
  it('300 replays of a live token under fresh connection ids hold one unproven session, touch no storage, and the honest client still gets through', async () => {
    const data = testBytes(300 * 1024, 31);
    const local = join(dir, 'honest.bin');
    writeFileSync(local, data);
    const spec = await uploadSpec('honest.bin', data.length);
    const storage = [vi.spyOn(guard, 'assertTransferable'), vi.spyOn(transfers, 'get'), vi.spyOn(transfers, 'markRunning')];
    const before = await health();
    const r = await replayer();
    for (let i = 0; i < 300; i += 1) {
      r.hello(spec.token);
      if (i % 50 === 49) await sleep(5);
    }
    await until(async () => Number((await health()).sessionsStarted) - Number(before.sessionsStarted) === 300, 'the engine to take the 300 hellos');
    const during = await health();
    expect(during).toMatchObject({ sessions: 1, unprovenSessions: 1 });
    expect(Number(during.unprovenDropped) - Number(before.unprovenDropped)).toBe(299);
    for (const spy of storage) expect(spy).not.toHaveBeenCalled();
    expect(logLines.filter((l) => l.msg === 'session start')).toEqual([]);
    // ServerHellos (two per hello), each far smaller than the hello: nothing else, and no amplification.
    expect(r.replies.every((b) => b[0] === PacketType.serverHello)).toBe(true);
    expect(r.replies.reduce((sum, b) => sum + b.length, 0)).toBeLessThan(r.sentBytes / 3);

    // The honest client's hello replaces the replayed one; it proves itself and the session starts.
    const result = await runUdpSession(spec, { direction: 'upload', files: [{ index: 0, path: 'honest.bin', size: data.length, localPath: local }] }, quiet());
    expect(result.status).toBe('COMPLETED');
    expect((await readObject(inject('s3rver'), bucket, `honest.bin-dir/honest.bin`)).equals(data)).toBe(true);
    expect(storage[0]).toHaveBeenCalled();
    expect(storage[2]).toHaveBeenCalledTimes(1);
    r.socket.close();
    for (const spy of storage) spy.mockRestore();
  });

  it(`caps unproven sessions at ${maxUnprovenSessions} and drops them silently after the timeout`, async () => {
    const specs = await Promise.all(Array.from({ length: maxUnprovenSessions + 2 }, (_, i) => uploadSpec(`cap-${i}.bin`, 10)));
    const markRunning = vi.spyOn(transfers, 'markRunning');
    const before = await health();
    const r = await replayer();
    for (const spec of specs) r.hello(spec.token);
    await until(async () => Number((await health()).hellosRefusedUnproven) - Number(before.hellosRefusedUnproven) === 2, 'two hellos refused');
    expect(await health()).toMatchObject({ unprovenSessions: maxUnprovenSessions, sessions: maxUnprovenSessions });

    await until(async () => (await health()).unprovenSessions === 0, 'the unproven sessions to go', unprovenTimeoutMs * 3);
    const after = await health();
    expect(after).toMatchObject({ sessions: 0 });
    expect(Number(after.unprovenDropped) - Number(before.unprovenDropped)).toBe(maxUnprovenSessions);
    // Their ServerHellos (each sent twice) and nothing else: no CLOSE, no storage.
    expect(r.replies.length).toBe(2 * maxUnprovenSessions);
    expect(r.replies.every((b) => b[0] === PacketType.serverHello)).toBe(true);
    expect(markRunning).not.toHaveBeenCalled();
    r.socket.close();
    markRunning.mockRestore();
  });

  it('logs refused hellos at most once a second, with how many it left out, and counts them by reason', async () => {
    const before = await health();
    const linesBefore = logLines.filter((l) => l.msg === 'hello refused').length;
    const r = await replayer();
    await sleep(1_100); // the last refusal line of an earlier test is more than a second old
    for (let i = 0; i < 200; i += 1) r.hello(`v1.k1.${randomBytes(90).toString('base64url')}`);
    for (let i = 0; i < 3; i += 1) r.socket.send(Buffer.from([PacketType.clientHello, 1, 2, 3]), engine.udpPort, '127.0.0.1');
    await until(async () => Number((await health()).hellosRefused) - Number(before.hellosRefused) === 203, 'the refusals');
    expect(logLines.filter((l) => l.msg === 'hello refused').length - linesBefore).toBe(1);
    await sleep(1_100);
    r.hello('not-a-token');
    await until(async () => Number((await health()).hellosRefused) - Number(before.hellosRefused) === 204, 'one more refusal');
    const lines = logLines.filter((l) => l.msg === 'hello refused').slice(linesBefore);
    expect(lines).toHaveLength(2);
    expect(lines[1]!.fields).toMatchObject({ reason: 'token', suppressedSinceLastLine: 202 });
    const after = await health();
    expect(Number(after.hellosRefusedToken) - Number(before.hellosRefusedToken)).toBe(201);
    expect(Number(after.hellosRefusedMalformed) - Number(before.hellosRefusedMalformed)).toBe(3);
    expect(r.replies).toEqual([]);
    r.socket.close();
  });
});

describe('/health', () => {
  it("counts the packets sessions dropped, the sessions' that ended included", async () => {
    const spec = await uploadSpec('drops.bin', 10);
    const before = await health();
    const { socket, conn } = await clientFor(spec);
    let serverId: Buffer | undefined;
    let closed = false;
    const driver = new ConnectionDriver(conn, socket, (event) => (closed ||= event.type === 'closed'));
    socket.on('message', (bytes, rinfo) => {
      // The ServerHello names the engine's connection id: type, version, our id, then its id.
      if (bytes[0] === PacketType.serverHello) serverId ??= Buffer.from(bytes.subarray(2 + connectionIdBytes, 2 + 2 * connectionIdBytes));
      driver.input(bytes, addressKey(rinfo.address, rinfo.port));
    });
    driver.service();
    await until(async () => (await health()).unprovenSessions === 0 && (await health()).sessions === 1, 'the session to be proven');
    // Five packets with the session's id and garbage where the sealed payload goes: forged.
    for (let i = 0; i < 5; i += 1) {
      const forged = Buffer.concat([Buffer.from([PacketType.short]), serverId!, Buffer.from([0, 0]), randomBytes(6), randomBytes(48)]);
      socket.send(forged, engine.udpPort, '127.0.0.1');
    }
    await until(async () => Number((await health()).packetsDroppedForged) - Number(before.packetsDroppedForged) >= 5, 'the forged packets counted');
    conn.close(CloseCode.done, 'bye');
    driver.kick();
    await until(async () => closed && (await health()).sessions === 0, 'the session to end');
    const after = await health();
    expect(Number(after.packetsDroppedForged) - Number(before.packetsDroppedForged)).toBe(5);
    driver.stop();
    socket.close();
  });
});

describe('the engine before it knows what an upload already stored', () => {
  it('holds data sent before the manifest on the ServerHello credit, and stores it once it knows what is durable', async () => {
    const data = testBytes(earlyCreditBytes + 1024 * 1024 + 17, 41);
    const spec = await uploadSpec('early.bin', data.length);
    const { socket, conn } = await clientFor(spec);
    let creditAtConnect = -1;
    const controls: ControlMessage[] = [];
    let closed = false;
    const driver = new ConnectionDriver(conn, socket, (event) => {
      if (event.type === 'connected') creditAtConnect = conn.sendLimit;
      if (event.type === 'control') controls.push(decodeControl(event.message)!);
      closed ||= event.type === 'closed';
    });
    socket.on('message', (bytes, rinfo) => driver.input(bytes, addressKey(rinfo.address, rinfo.port)));
    driver.service();
    await until(async () => conn.isConnected, 'the handshake');
    expect(creditAtConnect).toBe(earlyCreditBytes);

    // Everything offered at once and no manifest yet: the credit lets its first bytes go, and no more.
    conn.write(0, data);
    conn.endWrites();
    driver.kick();
    await until(async () => conn.stats().dataBytesAcked === earlyCreditBytes, 'the early bytes acknowledged');
    await sleep(200);
    expect(conn.stats().dataBytesAcked).toBe(earlyCreditBytes);
    expect(controls).toEqual([]);

    conn.sendControl(encodeControl({ t: 'files', files: [{ index: 0, path: 'early.bin', size: data.length }], final: true }));
    conn.sendControl(encodeControl({ t: 'sum', index: 0, sha256: checksumOf(data) }));
    driver.kick();
    await until(async () => controls.some((m) => m.t === 'done'), 'the engine to commit the file');
    expect(controls[0]).toEqual({ t: 'have', ranges: [] });
    expect(controls.some((m) => m.t === 'file-error')).toBe(false);
    expect((await readObject(inject('s3rver'), bucket, 'early.bin-dir/early.bin')).equals(data)).toBe(true);
    conn.close(CloseCode.done, 'transfer complete');
    driver.kick();
    await until(async () => closed, 'the close');
    driver.stop();
    socket.close();
  });
});
