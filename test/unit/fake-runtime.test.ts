import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import { FakeRuntime } from '../support/fake-runtime';
import { waitFor } from '../support/wait';

const identity = (b: Buffer): Buffer => b;
const RUNTIME = '/runtime.v1.RuntimeService';

let dir: string;
let fake: FakeRuntime;
let client: grpc.Client;

function unary(
  path: string,
  request: Buffer,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<{ err: grpc.ServiceError | null; value: Buffer | undefined }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, identity, identity, request, metadata, options, (err, value) => {
      resolve({ err, value });
    });
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fake-runtime-'));
  fake = new FakeRuntime(join(dir, 'runtime.sock'));
  await fake.start();
  client = new grpc.Client(fake.target, grpc.credentials.createInsecure());
});

afterEach(async () => {
  client.close();
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('fake runtime', () => {
  it('answers Version with a real VersionResponse and records the raw request', async () => {
    const request = encodeMessage('runtime.v1.VersionRequest', { version: 'v1' });
    const metadata = new grpc.Metadata();
    metadata.set('x-trace', 'abc');
    metadata.set('x-blob-bin', Buffer.from([0, 1, 2]));
    const { err, value } = await unary(`${RUNTIME}/Version`, request, metadata, { deadline: Date.now() + 5000 });

    expect(err).toBeNull();
    expect(decodeMessage('runtime.v1.VersionResponse', value ?? Buffer.alloc(0))).toMatchObject({
      runtime_name: 'fake-runtime',
    });
    const call = fake.lastCall('Version');
    expect(call?.path).toBe(`${RUNTIME}/Version`);
    expect(call?.requestBytes.equals(request)).toBe(true);
    expect(call?.metadata['x-trace']).toBe('abc');
    expect(call?.metadata['x-blob-bin']).toEqual([Buffer.from([0, 1, 2])]);
    expect(call?.deadline).toBeGreaterThan(Date.now());
  });

  it('replies with scripted bytes, or an empty message by default', async () => {
    const reply = encodeMessage('runtime.v1.RunPodSandboxResponse', { pod_sandbox_id: 'sb-1' });
    fake.on('RunPodSandbox', { respond: reply });
    expect((await unary(`${RUNTIME}/RunPodSandbox`, Buffer.alloc(0))).value?.equals(reply)).toBe(true);
    expect((await unary(`${RUNTIME}/StopPodSandbox`, Buffer.alloc(0))).value).toEqual(Buffer.alloc(0));
  });

  it('fails with a scripted status, trailers and status details', async () => {
    fake.on('RemovePodSandbox', {
      fail: {
        code: grpc.status.NOT_FOUND,
        message: 'no such sandbox',
        trailers: { 'x-reason': 'gone', 'x-extra-bin': Buffer.from([9]) },
        details: Buffer.from([8, 5]),
      },
    });
    const { err } = await unary(`${RUNTIME}/RemovePodSandbox`, Buffer.alloc(0));
    expect(err?.code).toBe(grpc.status.NOT_FOUND);
    expect(err?.details).toBe('no such sandbox');
    expect(err?.metadata.get('x-reason')).toEqual(['gone']);
    expect(err?.metadata.get('x-extra-bin')).toEqual([Buffer.from([9])]);
    expect(err?.metadata.get('grpc-status-details-bin')).toEqual([Buffer.from([8, 5])]);
  });

  it('streams scripted messages in order', async () => {
    const messages = [Buffer.from([0x0a, 0x00]), Buffer.alloc(0), Buffer.alloc(70_000, 1)];
    fake.on('StreamContainers', {
      *stream() {
        yield* messages;
      },
    });
    const received: Buffer[] = [];
    const stream = client.makeServerStreamRequest(
      `${RUNTIME}/StreamContainers`,
      identity,
      identity,
      Buffer.from([0x0a, 0x00]),
      new grpc.Metadata(),
      {},
    );
    stream.on('data', (b: Buffer) => received.push(b));
    const status = await new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(received).toEqual(messages);
    expect(fake.lastCall('StreamContainers')?.requestBytes).toEqual(Buffer.from([0x0a, 0x00]));
  });

  it('writes an endless stream with backpressure and stops when the client cancels', async () => {
    let yielded = 0;
    fake.on('GetContainerEvents', {
      *stream() {
        for (;;) {
          yielded++;
          yield Buffer.alloc(16_384, 7);
        }
      },
    });
    const stream = client.makeServerStreamRequest(
      `${RUNTIME}/GetContainerEvents`,
      identity,
      identity,
      Buffer.alloc(0),
      new grpc.Metadata(),
      {},
    );
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('error', () => undefined); // the cancellation surfaces as an error; the status says which
    let received = 0;
    stream.on('data', () => {
      if (++received === 3) stream.cancel();
    });
    expect((await status).code).toBe(grpc.status.CANCELLED);
    await waitFor(() => fake.lastCall('GetContainerEvents')?.cancelled === true);
    const settled = yielded;
    // A full round trip to the fake meanwhile: a generator still running would have yielded more.
    expect((await unary(`${RUNTIME}/Version`, Buffer.alloc(0))).err).toBeFalsy();
    expect(yielded).toBe(settled);
    // Backpressure held the generator to what the transport buffers, not an unbounded number of messages.
    expect(yielded).toBeLessThan(200);
  });

  it('sends scripted initial metadata and trailers', async () => {
    fake.on('Status', { initialMetadata: { 'x-first': 'yes' }, trailers: { 'x-last-bin': Buffer.from([1]) } });
    const headers = new Promise<grpc.Metadata>((resolve) => {
      client.makeUnaryRequest(`${RUNTIME}/Status`, identity, identity, Buffer.alloc(0), () => undefined).on('metadata', resolve);
    });
    expect((await headers).get('x-first')).toEqual(['yes']);
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      client.makeUnaryRequest(`${RUNTIME}/Status`, identity, identity, Buffer.alloc(0), () => undefined).on('status', resolve);
    });
    expect(status.metadata.get('x-last-bin')).toEqual([Buffer.from([1])]);
  });

  it('notices when a delayed call is cancelled by its deadline', async () => {
    fake.on('ListContainers', { delayMs: Infinity });
    const { err } = await unary(`${RUNTIME}/ListContainers`, Buffer.alloc(0), undefined, {
      deadline: Date.now() + 100,
    });
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await waitFor(() => fake.lastCall('ListContainers')?.cancelled === true);
  });

  it('can be stopped and started again on the same socket', async () => {
    await fake.stop();
    expect((await unary(`${RUNTIME}/Version`, Buffer.alloc(0))).err?.code).toBe(grpc.status.UNAVAILABLE);
    await fake.start();
    client.close();
    client = new grpc.Client(fake.target, grpc.credentials.createInsecure());
    expect((await unary(`${RUNTIME}/Version`, Buffer.alloc(0))).err).toBeNull();
    expect(fake.calls.map((c) => c.name)).toEqual(['Version']);
  });
});
