import * as grpc from '@grpc/grpc-js';
import { encodeMessage, decodeMessage } from '../../src/messages/codec';
import { methodTable } from '../../src/chain/method-table';
import { startTestProxy, type RawClient, type TestProxy } from '../support/proxy-harness';
import { waitFor } from '../support/wait';

/** Field 999, varint 7: a field no CRI version defines, which must still reach the runtime. */
const UNKNOWN_FIELD = Buffer.from([0xb8, 0x3e, 0x07]);

function collect(stream: grpc.ClientReadableStream<Buffer>): Promise<{ messages: Buffer[]; status: grpc.StatusObject }> {
  return new Promise((resolve) => {
    const messages: Buffer[] = [];
    stream.on('data', (m: Buffer) => messages.push(m));
    stream.on('error', () => undefined);
    stream.on('status', (status: grpc.StatusObject) => resolve({ messages, status }));
  });
}

describe('forwarding through the proxy', () => {
  let proxy: TestProxy;
  let client: RawClient;
  beforeEach(async () => {
    proxy = await startTestProxy();
    client = proxy.client();
  });
  afterEach(async () => {
    await proxy.close();
  });

  test('a unary call reaches the runtime byte for byte and the answer comes back', async () => {
    const request = encodeMessage('runtime.v1.VersionRequest', { version: 'v1' });
    const result = await client.unary('/runtime.v1.RuntimeService/Version', request);
    expect(result.status.code).toBe(grpc.status.OK);
    expect(proxy.runtime.lastCall('Version')?.requestBytes.equals(request)).toBe(true);
    expect(decodeMessage('runtime.v1.VersionResponse', result.response ?? Buffer.alloc(0))).toMatchObject({
      runtime_name: 'fake-runtime',
    });
  });

  test.each(methodTable.map((m) => [m.path, m] as const))('%s passes with an unknown field intact', async (_path, method) => {
    const request = Buffer.concat([Buffer.from([0x0a, 0x02, 0x68, 0x69]), UNKNOWN_FIELD]);
    const reply = Buffer.concat([Buffer.from([0x12, 0x01, 0x78]), UNKNOWN_FIELD]);
    proxy.runtime.on(method.name, { respond: reply });
    if (method.kind === 'server-stream') {
      const { messages, status } = await collect(client.serverStream(method.path, request));
      expect(status.code).toBe(grpc.status.OK);
      expect(messages.map((m) => m.toString('hex'))).toEqual([reply.toString('hex')]);
    } else {
      const result = await client.unary(method.path, request);
      expect(result.status.code).toBe(grpc.status.OK);
      expect(result.response?.toString('hex')).toBe(reply.toString('hex'));
    }
    expect(proxy.runtime.lastCall(method.name)?.requestBytes.toString('hex')).toBe(request.toString('hex'));
  });

  test.each([10, 200_000, 3_000_000])('a unary response of %i bytes arrives whole', async (size) => {
    const reply = Buffer.alloc(size, 7);
    proxy.runtime.on('ListImages', { respond: reply, trailers: { 'x-after': 'body' } });
    const result = await client.unary('/runtime.v1.ImageService/ListImages', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.OK);
    expect(result.response?.equals(reply)).toBe(true);
    expect(result.status.metadata.get('x-after')).toEqual(['body']);
  });

  test('metadata travels both ways, binary keys included', async () => {
    proxy.runtime.on('Status', { initialMetadata: { 'x-runtime': 'yes', 'x-blob-bin': Buffer.from([0, 1, 2]) } });
    const md = new grpc.Metadata();
    md.set('x-request-id', 'abc');
    md.set('x-token-bin', Buffer.from([9, 8, 7]));
    const result = await client.unary('/runtime.v1.RuntimeService/Status', Buffer.alloc(0), md);
    expect(result.status.code).toBe(grpc.status.OK);
    const seen = proxy.runtime.lastCall('Status')?.metadata;
    expect(seen?.['x-request-id']).toEqual('abc');
    expect(seen?.['x-token-bin']).toEqual([Buffer.from([9, 8, 7])]);
    expect(result.headers?.get('x-runtime')).toEqual(['yes']);
    expect(result.headers?.get('x-blob-bin')).toEqual([Buffer.from([0, 1, 2])]);
  });

  test('an error keeps its code, message, details and trailers', async () => {
    const details = Buffer.from('0a0474657374', 'hex');
    proxy.runtime.on('ContainerStatus', {
      fail: { code: grpc.status.NOT_FOUND, message: 'container "x" 100% gone', trailers: { 'x-why': 'because' }, details },
    });
    const result = await client.unary('/runtime.v1.RuntimeService/ContainerStatus', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.NOT_FOUND);
    expect(result.status.details).toBe('container "x" 100% gone');
    expect(result.status.metadata.get('x-why')).toEqual(['because']);
    expect(result.status.metadata.get('grpc-status-details-bin')).toEqual([details]);
  });

  test('trailers of a successful call come back', async () => {
    proxy.runtime.on('ListImages', { trailers: { 'x-count': '3' } });
    const result = await client.unary('/runtime.v1.ImageService/ListImages', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.OK);
    expect(result.status.metadata.get('x-count')).toEqual(['3']);
  });

  test('the deadline reaches the runtime and expires there', async () => {
    proxy.runtime.on('ExecSync', { delayMs: Infinity });
    const started = Date.now();
    const result = await client.unary('/runtime.v1.RuntimeService/ExecSync', Buffer.alloc(0), new grpc.Metadata(), {
      deadline: started + 300,
    });
    expect(result.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const seen = proxy.runtime.lastCall('ExecSync');
    // The same absolute deadline, give or take each hop's transit (which can only move it later): present and
    // bounded, not dropped. The upper margin is for a loaded machine, not a claim about speed.
    expect(seen?.deadline).toBeGreaterThan(started + 200);
    expect(seen?.deadline).toBeLessThan(started + 300 + 10_000);
    await waitFor(() => seen?.cancelled === true);
  });

  test("the client's cancellation cancels the runtime's call", async () => {
    proxy.runtime.on('GetContainerEvents', { delayMs: Infinity });
    const stream = client.serverStream('/runtime.v1.RuntimeService/GetContainerEvents', Buffer.alloc(0));
    stream.on('error', () => undefined);
    await waitFor(() => proxy.runtime.lastCall('GetContainerEvents') !== undefined);
    stream.cancel();
    await waitFor(() => proxy.runtime.lastCall('GetContainerEvents')?.cancelled === true);
  });

  test('a method the proxy does not know reaches the runtime byte for byte, and its answer comes back', async () => {
    const future = '/runtime.v1alpha2.RuntimeService/Version';
    await proxy.close();
    proxy = await startTestProxy({ extraMethods: [future] });
    client = proxy.client();
    proxy.runtime.on(future, { respond: Buffer.from([0x0a, 0x01, 0x7a]), trailers: { 'x-old': 'api' } });
    const request = Buffer.concat([Buffer.from([1, 2, 3]), UNKNOWN_FIELD]);
    const result = await client.unary(future, request);
    expect(result.status.code).toBe(grpc.status.OK);
    expect(result.response?.toString('hex')).toBe('0a017a');
    expect(result.status.metadata.get('x-old')).toEqual(['api']);
    expect(proxy.runtime.lastCall(future)?.requestBytes.toString('hex')).toBe(request.toString('hex'));
    // An unknown service altogether gets the runtime's own UNIMPLEMENTED.
    const unknown = await client.unary('/vendor.Thing/Do', Buffer.alloc(0));
    expect(unknown.status.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(unknown.status.details).toContain('/vendor.Thing/Do');
  });

  test('a request larger than the limit is refused with RESOURCE_EXHAUSTED', async () => {
    await proxy.close();
    proxy = await startTestProxy({ maxMessageBytes: 1024 });
    client = proxy.client();
    const result = await client.unary('/runtime.v1.RuntimeService/Status', Buffer.alloc(4096, 1));
    expect(result.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(result.status.details).toContain('maxMessageBytes');
  });

  test('a response larger than the limit is refused with RESOURCE_EXHAUSTED', async () => {
    await proxy.close();
    proxy = await startTestProxy({ maxMessageBytes: 1024 });
    client = proxy.client();
    proxy.runtime.on('ListContainers', { respond: Buffer.alloc(4096, 1) });
    const result = await client.unary('/runtime.v1.RuntimeService/ListContainers', Buffer.alloc(0));
    expect(result.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(result.status.details).toContain('response message');
  });
});
