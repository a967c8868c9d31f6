import { Registry } from 'prom-client';
import { EventsMerger, type EventSubscription, type EventsMergerOptions, type Schedule } from '../../src/interceptors/routing/events';
import { routingMetrics } from '../../src/interceptors/routing/metrics';
import { silentLogger } from '../../src/log';
import { encode, FakeStreams } from '../support/fake-backends';
import { sample } from '../support/metric-samples';

/** Timers the test fires by hand; `now` moves only when the test says. */
class FakeClock {
  now = 0;
  readonly pending: { at: number; delay: number; run: () => void; cancelled: boolean }[] = [];
  readonly schedule: Schedule = (run, ms) => {
    const timer = { at: this.now + ms, delay: ms, run, cancelled: false };
    this.pending.push(timer);
    return () => (timer.cancelled = true);
  };
  get delays(): number[] {
    return this.pending.filter((t) => !t.cancelled).map((t) => t.delay);
  }
  /** Runs every live timer due by `now + ms`. */
  advance(ms: number): void {
    this.now += ms;
    for (const t of this.pending.splice(0)) {
      if (t.cancelled) continue;
      if (t.at <= this.now) t.run();
      else this.pending.push(t);
    }
  }
}

const event = (id: string): Buffer =>
  encode('ContainerEventResponse', { container_id: id, container_event_type: 'CONTAINER_STARTED_EVENT' });
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(overrides: Partial<EventsMergerOptions> = {}) {
  const registry = new Registry();
  const streams = new FakeStreams();
  const clock = new FakeClock();
  const observed: [string, string][] = [];
  const merger = new EventsMerger({
    backends: ['a', 'b'],
    stream: streams.stream,
    reconnectInitialMs: 100,
    reconnectMaxMs: 1000,
    subscriberBufferMessages: 3,
    subscriberBufferBytes: 1 << 20,
    metrics: routingMetrics(registry),
    log: silentLogger,
    schedule: clock.schedule,
    now: () => clock.now,
    observe: (backend, m) => observed.push([backend, m.toString('hex')]),
    ...overrides,
  });
  return { merger, streams, clock, registry, observed };
}

async function take(sub: EventSubscription, count: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const it = sub[Symbol.asyncIterator]();
  while (out.length < count) {
    const next = await it.next();
    if (next.done === true) break;
    out.push(next.value);
  }
  return out;
}

test('no upstream until someone subscribes; one per backend, shared by every subscriber', async () => {
  const { merger, streams, registry, observed } = setup();
  expect(streams.opened).toEqual([]);
  const one = merger.subscribe();
  const two = merger.subscribe();
  expect(streams.opened.map((s) => [s.backend, s.path, s.request.length])).toEqual([
    ['a', '/runtime.v1.RuntimeService/GetContainerEvents', 0],
    ['b', '/runtime.v1.RuntimeService/GetContainerEvents', 0],
  ]);
  await streams.to('a')[0]?.push(event('c1'));
  await streams.to('b')[0]?.push(event('c2'));
  expect(await take(one, 2)).toEqual([event('c1'), event('c2')]);
  expect(await take(two, 2)).toEqual([event('c1'), event('c2')]);
  expect(observed.map(([b]) => b)).toEqual(['a', 'b']);
  expect(await sample(registry, 'cri_proxy_routing_event_subscribers')).toBe(2);
  expect(await sample(registry, 'cri_proxy_routing_event_upstream_up', { backend: 'a' })).toBe(1);
});

test('the last subscriber leaving closes the upstreams; the next one opens them again', async () => {
  const { merger, streams, registry } = setup();
  const sub = merger.subscribe();
  sub.close();
  expect(streams.opened.every((s) => s.signal.aborted)).toBe(true);
  expect(sub.ended?.code).toBe(1);
  expect(await sample(registry, 'cri_proxy_routing_event_subscribers')).toBe(0);
  expect(await sample(registry, 'cri_proxy_routing_event_upstream_up', { backend: 'a' })).toBeUndefined();
  merger.subscribe();
  expect(streams.opened.filter((s) => !s.signal.aborted).map((s) => s.backend)).toEqual(['a', 'b']);
});

test('a broken upstream reconnects with doubling back-off while subscribers stay connected', async () => {
  const { merger, streams, clock, registry } = setup();
  const sub = merger.subscribe();
  streams.to('b')[0]?.end({ code: 14, message: 'runtime restarted' });
  await flush();
  expect(clock.delays).toEqual([100]);
  expect(await sample(registry, 'cri_proxy_routing_event_upstream_up', { backend: 'b' })).toBe(0);
  clock.advance(99);
  expect(streams.to('b')).toHaveLength(1);
  clock.advance(1);
  expect(streams.to('b')).toHaveLength(2);
  expect(await sample(registry, 'cri_proxy_routing_event_upstream_reconnects_total', { backend: 'b' })).toBe(1);
  expect(await sample(registry, 'cri_proxy_routing_event_upstream_up', { backend: 'b' })).toBe(1);

  // Fails again at once: the wait doubles, up to the maximum.
  for (const expected of [200, 400, 800, 1000, 1000]) {
    streams.to('b').at(-1)?.end({ code: 14, message: 'down' });
    await flush();
    expect(clock.delays).toEqual([expected]);
    clock.advance(expected);
  }
  expect(sub.ended).toBeUndefined();
  // Events from the other backend kept flowing, and the reconnected one delivers again.
  await streams.to('a')[0]?.push(event('a1'));
  await streams.to('b').at(-1)?.push(event('b1'));
  expect(await take(sub, 2)).toEqual([event('a1'), event('b1')]);
});

test('after a stream that delivered events, the back-off starts again from the beginning', async () => {
  const { merger, streams, clock } = setup();
  merger.subscribe();
  for (const expected of [100, 200]) {
    streams.to('a').at(-1)?.end({ code: 14, message: 'down' });
    await flush();
    expect(clock.delays).toEqual([expected]);
    clock.advance(expected);
  }
  await streams.to('a').at(-1)?.push(event('x'));
  streams.to('a').at(-1)?.end({ code: 14, message: 'down' });
  await flush();
  expect(clock.delays).toEqual([100]);
});

test('a stream that stayed open a long time also resets the back-off', async () => {
  const { merger, streams, clock } = setup();
  merger.subscribe();
  streams.to('a').at(-1)?.end({ code: 14, message: 'down' });
  await flush();
  clock.advance(100);
  clock.advance(5000);
  streams.to('a').at(-1)?.end({ code: 0 });
  await flush();
  expect(clock.delays).toEqual([100]);
});

test('a rejected stream call is a broken upstream too', async () => {
  const { merger, clock } = setup({ backends: ['a'], stream: () => Promise.reject(new Error('boom')) });
  merger.subscribe();
  await flush();
  expect(clock.delays).toEqual([100]);
});

test('a stuck subscriber is dropped and counted; the others keep their events', async () => {
  const { merger, streams, registry } = setup();
  const stuck = merger.subscribe();
  const live = merger.subscribe();
  const received: Buffer[] = [];
  const reading = (async () => {
    for await (const m of live) received.push(m);
  })();
  const a = streams.to('a')[0];
  for (const id of ['1', '2', '3']) await a?.push(event(id));
  expect(stuck.ended).toBeUndefined();
  await a?.push(event('4'));
  expect(stuck.ended?.code).toBe(8);
  expect(stuck.ended?.message).toMatch(/fell behind with 3 events \(\d+ bytes\) not taken and was dropped/);
  // Dropped: what it had queued is discarded, so its stream can end at once.
  expect(await take(stuck, 10)).toEqual([]);
  expect(await sample(registry, 'cri_proxy_routing_event_subscribers_dropped_total')).toBe(1);
  expect(await sample(registry, 'cri_proxy_routing_event_subscribers')).toBe(1);
  await a?.push(event('5'));
  live.close();
  await reading;
  expect(received).toEqual(['1', '2', '3', '4', '5'].map(event));
  expect(streams.opened.every((s) => s.signal.aborted)).toBe(true);
});

test('the byte limit drops a subscriber too', async () => {
  const big = Buffer.alloc(600, 1);
  const { merger, streams } = setup({ subscriberBufferMessages: 100, subscriberBufferBytes: 1024 });
  const sub = merger.subscribe();
  await streams.to('a')[0]?.push(big);
  expect(sub.ended).toBeUndefined();
  await streams.to('a')[0]?.push(big);
  expect(sub.ended?.code).toBe(8);
});

test('a waiting reader takes each event directly (nothing queues)', async () => {
  const { merger, streams } = setup({ subscriberBufferMessages: 1 });
  const sub = merger.subscribe();
  const it = sub[Symbol.asyncIterator]();
  for (const id of ['1', '2', '3']) {
    const next = it.next();
    await streams.to('a')[0]?.push(event(id));
    expect(await next).toEqual({ done: false, value: event(id) });
  }
  expect(sub.ended).toBeUndefined();
});

test('close ends every subscriber UNAVAILABLE and stops reconnecting; later subscribers end at once', async () => {
  const { merger, streams, clock } = setup();
  const sub = merger.subscribe();
  streams.to('a')[0]?.end({ code: 14, message: 'down' });
  await flush();
  merger.close();
  expect(sub.ended?.code).toBe(14);
  expect(clock.delays).toEqual([]);
  clock.advance(10_000);
  expect(streams.to('a')).toHaveLength(1);
  const late = merger.subscribe();
  expect(late.ended?.code).toBe(14);
  expect(await take(late, 1)).toEqual([]);
});

test('an observer that throws does not stop events', async () => {
  const { merger, streams } = setup({
    observe: () => {
      throw new Error('bad observer');
    },
  });
  const sub = merger.subscribe();
  await streams.to('a')[0]?.push(event('1'));
  expect(await take(sub, 1)).toEqual([event('1')]);
});

test('ending the iteration early closes the subscription', async () => {
  const { merger, streams } = setup();
  const sub = merger.subscribe();
  await streams.to('a')[0]?.push(event('1'));
  for await (const m of sub) {
    expect(m).toEqual(event('1'));
    break;
  }
  expect(sub.ended?.code).toBe(1);
  expect(merger.subscriberCount).toBe(0);
});
