import { compileListMerge } from '../../src/interceptors/routing/list-merge';
import { mergeStreams, type StreamMergeOptions } from '../../src/interceptors/routing/stream-merge';
import { encode, FakeStreams, listOf } from '../support/fake-backends';

const PATH = '/runtime.v1.ImageService/StreamImages';
const img = (id: string): Buffer => listOf([encode('Image', { id })]);

function setup(overrides: Partial<StreamMergeOptions> = {}) {
  const streams = new FakeStreams();
  const sent: Buffer[] = [];
  const client = new AbortController();
  const options: StreamMergeOptions = {
    stream: streams.stream,
    backends: ['a', 'b'],
    method: 'StreamImages',
    path: PATH,
    request: encode('StreamImagesRequest', { filter: { image: { image: 'busybox' } } }),
    metadata: ['x-request', '1'],
    deadline: 999,
    signal: client.signal,
    merge: compileListMerge('runtime.v1.StreamImagesResponse', [{ field: 'images', uniqueBy: 'id' }]),
    send: (m) => {
      sent.push(m);
      return Promise.resolve();
    },
    ...overrides,
  };
  return { streams, sent, client, options };
}

test('both streams merged, each message as it arrived; OK once both ended', async () => {
  const { streams, sent, options } = setup();
  const done = mergeStreams(options);
  await streams.waitForOpened(2);
  const [a, b] = [streams.to('a')[0], streams.to('b')[0]];
  if (a === undefined || b === undefined) throw new Error('not opened');
  expect([a.path, a.request.equals(options.request), b.path]).toEqual([PATH, true, PATH]);
  await a.push(img('1'));
  await b.push(img('2'));
  await b.push(img('1')); // already sent by a: left out
  await a.push(img('3'));
  a.end();
  let settled = false;
  void done.then(() => (settled = true));
  await b.push(img('4'));
  expect(settled).toBe(false);
  b.end();
  expect(await done).toEqual({ code: 0, message: '', body: undefined });
  expect(sent).toEqual([img('1'), img('2'), img('3'), img('4')]);
});

test('a failing backend ends the merged stream naming it, and cancels the others', async () => {
  const { streams, options } = setup();
  const done = mergeStreams(options);
  await streams.waitForOpened(2);
  streams.to('b')[0]?.end({ code: 14, message: 'connection refused' });
  const answer = await done;
  expect(answer.code).toBe(14);
  expect(answer.message).toBe('cri-proxy: StreamImages needs every backend; backend "b" failed: UNAVAILABLE: connection refused');
  expect(streams.to('a')[0]?.signal.aborted).toBe(true);
});

test('UNIMPLEMENTED on the backends that fail is kept, so kubelet falls back to ListImages', async () => {
  const { streams, options } = setup({ backends: ['a'] });
  const done = mergeStreams(options);
  await streams.waitForOpened(1);
  streams.to('a')[0]?.end({ code: 12, message: 'unknown method StreamImages' });
  expect((await done).code).toBe(12);
});

test('the client cancelling cancels every backend stream', async () => {
  const { streams, client, options } = setup();
  const done = mergeStreams(options);
  await streams.waitForOpened(2);
  client.abort();
  expect((await done).code).toBe(1);
  expect(streams.opened.every((s) => s.signal.aborted)).toBe(true);
});

test('a slow client holds the backends back instead of buffering', async () => {
  let release: () => void = () => undefined;
  const sent: Buffer[] = [];
  const { streams, options } = setup({
    send: (m) => {
      sent.push(m);
      return new Promise<void>((resolve) => (release = resolve));
    },
  });
  const done = mergeStreams(options);
  await streams.waitForOpened(2);
  const first = streams.to('a')[0]?.push(img('1'));
  let secondTaken = false;
  const second = streams
    .to('b')[0]
    ?.push(img('2'))
    .then(() => (secondTaken = true));
  await Promise.resolve();
  expect(sent).toEqual([img('1')]);
  release();
  await first;
  await new Promise((resolve) => setImmediate(resolve));
  expect(sent).toEqual([img('1'), img('2')]);
  expect(secondTaken).toBe(false);
  release();
  await second;
  for (const s of streams.opened) s.end();
  expect((await done).code).toBe(0);
});

test('a send that fails stops the merge', async () => {
  const { streams, options } = setup({ send: () => Promise.reject(new Error('stream closed')) });
  const done = mergeStreams(options);
  await streams.waitForOpened(2);
  await streams.to('a')[0]?.push(img('1'));
  const answer = await done;
  expect(answer).toMatchObject({ code: 1, message: expect.stringContaining('sending to the client failed: stream closed') as unknown });
  expect(streams.opened.every((s) => s.signal.aborted)).toBe(true);
});

test('a malformed message from a backend fails the merge naming it', async () => {
  const { streams, options } = setup();
  const done = mergeStreams(options);
  await streams.waitForOpened(2);
  await streams.to('b')[0]?.push(Buffer.from([0x0a, 0x09]));
  const answer = await done;
  expect(answer.code).toBe(13);
  expect(answer.message).toMatch(/backend "b" sent a malformed runtime.v1.StreamImagesResponse/);
});
