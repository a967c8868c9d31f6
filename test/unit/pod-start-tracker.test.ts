import { fakeCallContext } from '../support/fake-context';
import { PodStartTracker, type PodStart, type PodStartTrackerOptions } from '../../src/observability/pod-start-tracker';
import type { CallContext } from '../../src/chain/types';
import { ManualScheduler } from '../support/manual-scheduler';
import { encodeMessage, type DecodedMessage } from '../../src/messages/codec';

const RUNTIME = '/runtime.v1.RuntimeService/';
const IMAGE = '/runtime.v1.ImageService/';
const T0 = process.hrtime.bigint();
const at = (ms: number): bigint => T0 + BigInt(Math.round(ms * 1e6));

interface FakeCall {
  readonly path: string;
  readonly request: DecodedMessage;
  readonly response?: DecodedMessage;
  readonly code?: number;
  readonly metadata?: Record<string, string>;
}

/** The call as bytes on the wire: the tracker reads them there and must never decode (request() and response() throw). */
function fakeCtx(call: FakeCall): CallContext {
  const base = fakeCallContext(call.path, call.metadata);
  const { requestType, responseType } = base.method;
  const ok = (call.code ?? 0) === 0;
  const decoded = (): never => {
    throw new Error('the tracker decoded a message');
  };
  return {
    ...base,
    backend: 'fake',
    request: decoded,
    requestBytes: () => Promise.resolve(encodeMessage(requestType as string, call.request)),
    response: decoded,
    responseBytes: () => (ok && call.response !== undefined ? encodeMessage(responseType as string, call.response) : undefined),
    outcome: { code: call.code ?? 0, message: call.code ? 'failed' : '', fromProxy: false },
    upstreamNanos: 0n,
  };
}

const podMeta = (uid: string) => ({ name: `pod-${uid}`, namespace: 'default', uid, attempt: 0 });
const runPod = (uid: string, sandboxId: string, code = 0): FakeCall => ({
  path: `${RUNTIME}RunPodSandbox`,
  request: { config: { metadata: podMeta(uid) }, runtime_handler: 'runc' },
  response: { pod_sandbox_id: sandboxId },
  code,
});
const pull = (uid: string, image: string): FakeCall => ({
  path: `${IMAGE}PullImage`,
  request: { image: { image }, sandbox_config: { metadata: podMeta(uid) } },
  response: { image_ref: `sha256:${image}` },
});
const create = (uid: string, sandboxId: string, name: string, containerId: string): FakeCall => ({
  path: `${RUNTIME}CreateContainer`,
  request: {
    pod_sandbox_id: sandboxId,
    config: { metadata: { name }, image: { image: 'busybox' } },
    sandbox_config: { metadata: podMeta(uid) },
  },
  response: { container_id: containerId },
});
const start = (containerId: string, code = 0): FakeCall => ({
  path: `${RUNTIME}StartContainer`,
  request: { container_id: containerId },
  response: {},
  code,
});

function setup(options: Partial<PodStartTrackerOptions> = {}) {
  const completed: PodStart[] = [];
  const dropped: [string, string][] = [];
  const clock = new ManualScheduler();
  const tracker = new PodStartTracker({
    settleMs: 30,
    scheduler: clock,
    onComplete: (p) => completed.push(p),
    onDrop: (reason, uid) => dropped.push([reason, uid]),
    ...options,
  });
  const feed = async (call: FakeCall, fromMs: number, toMs: number): Promise<void> => {
    const ctx = fakeCtx(call);
    await tracker.prepare(ctx);
    tracker.observe(ctx, { startedAt: at(fromMs), endedAt: at(toMs) });
  };
  return { tracker, completed, dropped, feed, clock };
}

async function fullPodStart(feed: (c: FakeCall, a: number, b: number) => Promise<void>, uid = 'u1', sb = 'sb1'): Promise<void> {
  await feed(runPod(uid, sb), 0, 100);
  await feed(pull(uid, 'nginx:1'), 110, 400);
  await feed(create(uid, sb, 'app', `${sb}-c1`), 410, 450);
  await feed(create(uid, sb, 'sidecar', `${sb}-c2`), 455, 480);
  await feed(start(`${sb}-c1`), 490, 520);
  await feed(start(`${sb}-c2`), 525, 560);
}

describe('PodStartTracker', () => {
  test('a pod start is reported once, after the quiet period, ending at the last StartContainer', async () => {
    const { tracker, completed, feed, clock } = setup();
    await fullPodStart(feed);
    clock.advance(29);
    expect(completed).toHaveLength(0);
    clock.advance(1);
    expect(completed).toHaveLength(1);
    clock.advance(60_000);
    expect(completed).toHaveLength(1);
    const pod = completed[0] as PodStart;
    expect(pod).toMatchObject({
      uid: 'u1',
      name: 'pod-u1',
      namespace: 'default',
      sandboxId: 'sb1',
      runtimeHandler: 'runc',
      status: 'ok',
      code: 0,
      containers: 2,
    });
    expect(pod.phases.map((p) => [p.phase, p.detail])).toEqual([
      ['sandbox', undefined],
      ['pull', 'nginx:1'],
      ['create', 'app'],
      ['create', 'sidecar'],
      ['start', 'app'],
      ['start', 'sidecar'],
    ]);
    expect(pod.start.hrtime).toBe(at(0));
    expect(pod.end.hrtime).toBe(at(560));
    expect(pod.totalMs).toBeCloseTo(560, 6);
    expect(pod.phaseTotals).toEqual({ sandbox: 100, pull: 290, create: 65, start: 65 });
    expect(pod.end.epochMs - pod.start.epochMs).toBeCloseTo(560, 3);
    expect(tracker.stats).toEqual({ active: 0, completed: 1, failed: 0, dropped: 0 });
    tracker.close();
  });

  test('a new phase after a StartContainer postpones the end', async () => {
    const { tracker, completed, feed, clock } = setup({ settleMs: 40 });
    await feed(runPod('u1', 'sb1'), 0, 10);
    await feed(create('u1', 'sb1', 'init', 'c1'), 10, 20);
    await feed(start('c1'), 20, 30);
    clock.advance(20);
    await feed(create('u1', 'sb1', 'app', 'c2'), 40, 50);
    clock.advance(30);
    expect(completed).toHaveLength(0);
    await feed(start('c2'), 60, 70);
    clock.advance(40);
    expect(completed).toHaveLength(1);
    expect(completed[0]?.end.hrtime).toBe(at(70));
    expect(completed[0]?.containers).toBe(2);
    tracker.close();
  });

  test('a failed RunPodSandbox ends the pod start at once, as failed', async () => {
    const { tracker, completed, feed } = setup();
    await feed(runPod('u1', '', 2), 0, 50);
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ status: 'failed', code: 2, totalMs: 50, containers: 0 });
    expect(completed[0]?.phases.map((p) => p.code)).toEqual([2]);
    expect(tracker.stats).toMatchObject({ active: 0, failed: 1 });
    tracker.close();
  });

  test('a failing last StartContainer marks the pod start failed', async () => {
    const { tracker, completed, feed, clock } = setup();
    await feed(runPod('u1', 'sb1'), 0, 10);
    await feed(create('u1', 'sb1', 'app', 'c1'), 10, 20);
    await feed(start('c1', 13), 20, 30);
    clock.advance(30);
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ status: 'failed', code: 13 });
    tracker.close();
  });

  test('calls of pods it never saw start, other methods, and unprepared calls are ignored', async () => {
    const { tracker, completed, feed, clock } = setup();
    await feed(pull('nobody', 'x'), 0, 1);
    await feed(create('nobody', 'sbX', 'app', 'cX'), 0, 1);
    await feed(start('cX'), 0, 1);
    await feed({ path: `${RUNTIME}ContainerStatus`, request: { container_id: 'cX' } }, 0, 1);
    const unprepared = fakeCtx(runPod('u9', 'sb9'));
    tracker.observe(unprepared);
    expect(tracker.stats.active).toBe(0);
    clock.advance(60_000);
    expect(completed).toHaveLength(0);
    tracker.close();
  });

  test('bytes that are no protobuf message, in the request or in the answer, leave the call untracked', async () => {
    const { tracker, completed, clock } = setup();
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
    const badRequest: CallContext = { ...fakeCtx(runPod('u1', 'sb1')), requestBytes: () => Promise.resolve(garbage) };
    const badAnswer: CallContext = { ...fakeCtx(runPod('u2', 'sb2')), responseBytes: () => garbage };
    for (const ctx of [badRequest, badAnswer]) {
      await tracker.prepare(ctx);
      expect(tracker.observe(ctx)).toBeUndefined();
    }
    expect(tracker.stats.active).toBe(0);
    const good = fakeCtx(runPod('u3', 'sb3'));
    await tracker.prepare(good);
    expect(tracker.observe(good)?.phase).toBe('sandbox');
    expect(tracker.stats.active).toBe(1);
    clock.advance(60_000);
    expect(completed).toHaveLength(0);
    tracker.close();
  });

  test('the caller traceparent and extra links are kept per phase', async () => {
    const { tracker, completed } = setup();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const ctx = fakeCtx({ ...runPod('u1', 'sb1', 2), metadata: { traceparent, tracestate: 'k=v' } });
    await tracker.prepare(ctx);
    tracker.observe(ctx, { links: [{ traceparent: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01' }] });
    expect(completed[0]?.phases[0]?.links).toEqual([
      { traceparent, tracestate: 'k=v' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01' },
    ]);
    tracker.close();
  });

  test('state is bounded: beyond maxPods the least recently active pod is dropped', async () => {
    const { tracker, completed, dropped, feed, clock } = setup({ maxPods: 2 });
    await feed(runPod('u1', 'sb1'), 0, 1);
    await feed(runPod('u2', 'sb2'), 0, 1);
    await feed(runPod('u3', 'sb3'), 0, 1);
    expect(dropped).toEqual([['evicted', 'u1']]);
    expect(tracker.stats).toMatchObject({ active: 2, dropped: 1 });
    // The evicted pod's later phases find nothing.
    await feed(create('u1', 'sb1', 'app', 'c1'), 2, 3);
    await feed(start('c1'), 3, 4);
    await feed(create('u3', 'sb3', 'app', 'c3'), 2, 3);
    await feed(start('c3'), 3, 4);
    clock.advance(60_000);
    expect(completed.map((p) => p.uid)).toEqual(['u3']);
    tracker.close();
  });

  test('pods with no new phase within ttlMs expire and are counted', async () => {
    const { tracker, completed, dropped, feed, clock } = setup({ ttlMs: 1000 });
    await feed(runPod('u1', 'sb1'), 0, 1);
    clock.advance(999);
    expect(dropped).toEqual([]);
    // The next sweep (they run every ttlMs here) reports it without any further call.
    clock.advance(1001);
    expect(dropped).toEqual([['expired', 'u1']]);
    await feed(create('u1', 'sb1', 'app', 'c1'), 2, 3);
    await feed(start('c1'), 3, 4);
    clock.advance(60_000);
    expect(completed).toHaveLength(0);
    tracker.close();
  });

  test('a second RunPodSandbox for the same pod replaces an unfinished start', async () => {
    const { tracker, completed, dropped, feed, clock } = setup();
    await feed(runPod('u1', 'sb1'), 0, 1);
    await feed(runPod('u1', 'sb2'), 5, 6);
    expect(dropped).toEqual([['replaced', 'u1']]);
    await feed(create('u1', 'sb2', 'app', 'c1'), 7, 8);
    await feed(start('c1'), 8, 9);
    clock.advance(30);
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ sandboxId: 'sb2', totalMs: 4 });
    tracker.close();
  });

  test('close() reports pods whose containers started, forgets the rest and ignores later calls', async () => {
    const { tracker, completed, feed, clock } = setup({ settleMs: 60_000 });
    await fullPodStart(feed, 'u1', 'sb1');
    await feed(runPod('u2', 'sb2'), 0, 1);
    tracker.close();
    expect(clock.pending).toBe(0);
    expect(completed.map((p) => p.uid)).toEqual(['u1']);
    expect(tracker.stats.active).toBe(0);
    await feed(runPod('u3', 'sb3', 2), 0, 1);
    expect(completed).toHaveLength(1);
  });

  test('a consumer that throws does not break tracking', async () => {
    let calls = 0;
    const { tracker, feed } = setup({
      onComplete: () => {
        calls++;
        throw new Error('consumer bug');
      },
    });
    await feed(runPod('u1', '', 2), 0, 1);
    await feed(runPod('u2', '', 2), 0, 1);
    expect(calls).toBe(2);
    tracker.close();
  });
});
