import * as grpc from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { frameMessage } from '../../src/proxy/grpc-frames';
import { ErrorCode, Flag, FrameType } from '../../src/proxy/http2/frames';
import { sample } from '../support/metric-samples';
import { startTestProxy, type TestProxy } from '../support/proxy-harness';
import { u32 } from '../support/raw-h2';
import { RawRuntime, type Script } from '../support/raw-runtime';

const VERSION = '/runtime.v1.RuntimeService/Version';
const RESPONSE = [':status', '200', 'content-type', 'application/grpc'];
const OK = ['grpc-status', '0'];
/** A whole, valid answer to a unary call. */
const answer: Script = (id, _fields, reply) => {
  reply.headers(id, RESPONSE, false);
  reply.frame(FrameType.DATA, 0, id, frameMessage(Buffer.from([0x0a, 0x01, 0x76])));
  reply.headers(id, OK, true);
};

describe('a runtime that breaks HTTP/2 or gRPC', () => {
  let proxy: TestProxy;
  let runtime: RawRuntime;
  let registry: Registry;

  async function start(script: Script): Promise<void> {
    registry = new Registry();
    proxy = await startTestProxy({ runtimeDown: true, registry });
    runtime = new RawRuntime(proxy.runtime.socketPath, script);
    await runtime.start();
  }

  afterEach(async () => {
    await runtime.stop();
    await proxy.close();
  });

  const call = (): Promise<grpc.StatusObject> =>
    proxy
      .client()
      .unary(VERSION, Buffer.alloc(0))
      .then((r) => r.status);

  test('a well-behaved answer passes (the scripted runtime works)', async () => {
    await start(answer);
    expect((await call()).code).toBe(grpc.status.OK);
  });

  test.each<[string, Script, grpc.status]>([
    [
      'DATA before response headers',
      (id, _f, r) => r.frame(FrameType.DATA, Flag.END_STREAM, id, frameMessage(Buffer.alloc(1))),
      grpc.status.INTERNAL,
    ],
    [
      'a stream that ends without a status',
      (id, _f, r) => {
        r.headers(id, RESPONSE, false);
        r.frame(FrameType.DATA, Flag.END_STREAM, id, frameMessage(Buffer.alloc(1)));
      },
      grpc.status.INTERNAL,
    ],
    [
      'a reset after the response started',
      (id, _f, r) => {
        r.headers(id, RESPONSE, false);
        r.frame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.INTERNAL_ERROR));
      },
      grpc.status.INTERNAL,
    ],
    [
      'a reset before any response',
      (id, _f, r) => r.frame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.REFUSED_STREAM)),
      grpc.status.UNAVAILABLE,
    ],
    [
      'a second header block before the end',
      (id, _f, r) => {
        r.headers(id, RESPONSE, false);
        r.headers(id, ['x-more', '1'], false);
      },
      grpc.status.INTERNAL,
    ],
  ])('%s fails the call clearly', async (_name, script, code) => {
    await start(script);
    const status = await call();
    expect(status.code).toBe(code);
    expect(status.details).toContain('runtime "fake"');
  });

  test.each<[string, Script]>([
    ['a frame larger than the proxy allows', (_id, _f, r) => r.frame(FrameType.DATA, 0, 1, Buffer.alloc(2 * 1024 * 1024))],
    ['a PUSH_PROMISE', (id, _f, r) => r.frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, id, u32(2))],
    ['HEADERS on a stream the proxy never opened', (_id, _f, r) => r.headers(99, RESPONSE, true)],
  ])('%s is a connection error: calls fail UNAVAILABLE and the proxy reconnects', async (_name, script) => {
    let broken = true;
    await start((id, fields, reply) => {
      if (broken) {
        broken = false;
        script(id, fields, reply);
        return;
      }
      answer(id, fields, reply);
    });
    expect((await call()).code).toBe(grpc.status.UNAVAILABLE);
    expect(await sample(registry, 'cri_proxy_protocol_errors_total', { side: 'runtime', scope: 'connection' })).toBe(1);
    // The next call opens a fresh connection to the runtime.
    expect((await call()).code).toBe(grpc.status.OK);
  });

  test('GOAWAY before the runtime processed a call fails it UNAVAILABLE; later calls use a new connection', async () => {
    let first = true;
    await start((id, fields, reply) => {
      if (first) {
        first = false;
        reply.frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(0), u32(ErrorCode.NO_ERROR)]));
        return;
      }
      answer(id, fields, reply);
    });
    const refused = await call();
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.details).toContain('before processing it');
    expect((await call()).code).toBe(grpc.status.OK);
    expect(runtime.connections.length).toBe(2);
  });
});
