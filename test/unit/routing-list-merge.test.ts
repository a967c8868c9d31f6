import { ProxyError } from '../../src/errors';
import { compileListMerge, filterStreamMessage, ListCollector, mergeListBodies } from '../../src/interceptors/routing/list-merge';
import { methodRoutes } from '../../src/interceptors/routing/method-routes';
import { mergedList } from '../../src/interceptors/routing/node-wide';
import { decodeMessage } from '../../src/messages/codec';
import { lookupMethod } from '../../src/chain/method-table';
import { lengthDelimited, wireFields } from '../../src/messages/protobuf-wire';
import { encode, fail, fakeCall, listOf, ok, withUnknown } from '../support/fake-backends';

/** For each merged method: the list field(s), the item type and items keyed by a distinguishing string. */
const samples: Record<string, { type: string; item: (key: string) => Record<string, unknown>; fields: string[] }> = {
  ListPodSandbox: { type: 'PodSandbox', item: (k) => ({ id: k, metadata: { name: k, uid: `${k}-uid` } }), fields: ['items'] },
  ListContainers: { type: 'Container', item: (k) => ({ id: k, pod_sandbox_id: `${k}-pod` }), fields: ['containers'] },
  ListContainerStats: { type: 'ContainerStats', item: (k) => ({ attributes: { id: k }, cpu: { timestamp: '1' } }), fields: ['stats'] },
  ListPodSandboxStats: { type: 'PodSandboxStats', item: (k) => ({ attributes: { id: k } }), fields: ['stats'] },
  ListImages: { type: 'Image', item: (k) => ({ id: k, repo_tags: [`${k}:1`], size: '10' }), fields: ['images'] },
  ListPodSandboxMetrics: {
    type: 'PodSandboxMetrics',
    item: (k) => ({ pod_sandbox_id: k, metrics: [{ name: 'm' }] }),
    fields: ['pod_metrics'],
  },
  ListMetricDescriptors: { type: 'MetricDescriptor', item: (k) => ({ name: k, help: 'h' }), fields: ['descriptors'] },
  ImageFsInfo: {
    type: 'FilesystemUsage',
    item: (k) => ({ fs_id: { mountpoint: k }, used_bytes: { value: '1' } }),
    fields: ['image_filesystems', 'container_filesystems'],
  },
};
const streamOf: Record<string, string> = {
  StreamPodSandboxes: 'ListPodSandbox',
  StreamContainers: 'ListContainers',
  StreamContainerStats: 'ListContainerStats',
  StreamPodSandboxStats: 'ListPodSandboxStats',
  StreamImages: 'ListImages',
  StreamPodSandboxMetrics: 'ListPodSandboxMetrics',
};

const infoOf = (name: string) => lookupMethod(`/runtime.v1.${name.includes('Image') ? 'ImageService' : 'RuntimeService'}/${name}`);
const mergeFor = (name: string) => {
  const route = methodRoutes[name]?.route;
  if (route === undefined || !('lists' in route)) throw new Error(`${name} is not merged`);
  return compileListMerge(infoOf(name).responseType ?? '', route.lists);
};
const numberOf = (responseType: string, field: string): number => {
  const found = wireFields(encode(responseType.replace('runtime.v1.', ''), { [field]: [{}] }))[0];
  return found?.number ?? 0;
};

describe('every merged list', () => {
  test('the sample table covers exactly the merged methods', () => {
    const merged = Object.entries(methodRoutes)
      .filter(([, e]) => e.route.kind === 'merge')
      .map(([n]) => n);
    expect(Object.keys(samples).sort()).toEqual(merged.sort());
    const streams = Object.entries(methodRoutes)
      .filter(([, e]) => e.route.kind === 'merge-stream')
      .map(([n]) => n);
    expect(Object.keys(streamOf).sort()).toEqual(streams.sort());
  });

  test.each(Object.keys(samples))('%s: the union of both backends, default first, items byte for byte', (name) => {
    const sample = samples[name];
    if (sample === undefined) throw new Error('no sample');
    const responseType = infoOf(name).responseType ?? '';
    const body = (backend: string): Buffer =>
      Buffer.concat(
        sample.fields.map((field, f) => {
          const items = [1, 2].map((n) => encode(sample.type, sample.item(`${backend}-${f}-${n}`)));
          // One item carries a field this schema does not know: it must come through untouched.
          items[1] = withUnknown(items[1] as Buffer, `${backend}-${field}`);
          return listOf(items, numberOf(responseType, field));
        }),
      );
    const a = body('a');
    const b = body('b');
    const merged = mergeListBodies(mergeFor(name), [
      { backend: 'a', body: a },
      { backend: 'b', body: b },
    ]);
    const decoded = decodeMessage(responseType, merged);
    for (const [f, field] of sample.fields.entries()) {
      const keys = (decoded[field] as Record<string, unknown>[]).map((item) => JSON.stringify(item));
      const expected = ['a', 'b'].flatMap((backend) =>
        [1, 2].map((n) =>
          JSON.stringify(decodeMessage(`runtime.v1.${sample.type}`, encode(sample.type, sample.item(`${backend}-${f}-${n}`)))),
        ),
      );
      expect(keys).toEqual(expected);
    }
    // Every entry of both answers is in the merged one, as the same bytes (the unknown field included).
    const entries = (buf: Buffer): string[] => wireFields(buf).map((e) => buf.subarray(e.start, e.end).toString('hex'));
    expect(entries(merged).sort()).toEqual([...entries(a), ...entries(b)].sort());
    expect(merged.toString()).toContain('b-' + (sample.fields[0] ?? ''));
  });

  test('an empty answer (no items) merges as nothing', () => {
    const items = listOf([encode('Container', { id: 'c1' })]);
    const merged = mergeListBodies(mergeFor('ListContainers'), [
      { backend: 'a', body: undefined },
      { backend: 'b', body: items },
    ]);
    expect(merged).toEqual(items);
  });

  test('fields other than the list come from the first answer only', () => {
    const extraA = lengthDelimited(50, Buffer.from('a-envelope'));
    const extraB = lengthDelimited(50, Buffer.from('b-envelope'));
    const a = Buffer.concat([listOf([encode('PodSandbox', { id: 'p1' })]), extraA]);
    const b = Buffer.concat([extraB, listOf([encode('PodSandbox', { id: 'p2' })])]);
    const merged = mergeListBodies(mergeFor('ListPodSandbox'), [
      { backend: 'a', body: a },
      { backend: 'b', body: b },
    ]);
    expect(merged.includes(extraA)).toBe(true);
    expect(merged.includes(extraB)).toBe(false);
    expect((decodeMessage('runtime.v1.ListPodSandboxResponse', merged)['items'] as unknown[]).length).toBe(2);
  });
});

describe('items that appear on several backends', () => {
  test('ListImages: an image ID once, as the first backend lists it', () => {
    const onA = encode('Image', { id: 'sha256:1', repo_tags: ['busybox:1'] });
    const onB = encode('Image', { id: 'sha256:1', repo_tags: ['busybox:1', 'mine:2'] });
    const merged = mergeListBodies(mergeFor('ListImages'), [
      { backend: 'a', body: listOf([onA, encode('Image', { id: 'sha256:2' })]) },
      { backend: 'b', body: listOf([onB, encode('Image', { id: 'sha256:3' })]) },
    ]);
    const images = decodeMessage('runtime.v1.ListImagesResponse', merged)['images'] as { id: string; repo_tags?: string[] }[];
    expect(images.map((i) => i.id)).toEqual(['sha256:1', 'sha256:2', 'sha256:3']);
    expect(images[0]?.repo_tags).toEqual(['busybox:1']);
  });

  test('items without the key are never taken for duplicates', () => {
    const merged = mergeListBodies(mergeFor('ListImages'), [
      { backend: 'a', body: listOf([encode('Image', { size: '1' })]) },
      { backend: 'b', body: listOf([encode('Image', { size: '2' })]) },
    ]);
    expect((decodeMessage('runtime.v1.ListImagesResponse', merged)['images'] as unknown[]).length).toBe(2);
  });

  test('ListMetricDescriptors: a metric name once', () => {
    const merged = mergeListBodies(mergeFor('ListMetricDescriptors'), [
      { backend: 'a', body: listOf([encode('MetricDescriptor', { name: 'cpu', help: 'a' })]) },
      { backend: 'b', body: listOf([encode('MetricDescriptor', { name: 'cpu', help: 'b' }), encode('MetricDescriptor', { name: 'mem' })]) },
    ]);
    expect(decodeMessage('runtime.v1.ListMetricDescriptorsResponse', merged)['descriptors']).toEqual([
      { name: 'cpu', help: 'a' },
      { name: 'mem' },
    ]);
  });

  test('ImageFsInfo: a mount point once per list, each list on its own', () => {
    const fs = (mountpoint: string, used: string): Buffer =>
      encode('FilesystemUsage', { fs_id: { mountpoint }, used_bytes: { value: used } });
    const body = (image: Buffer[], container: Buffer[]): Buffer => Buffer.concat([listOf(image, 1), listOf(container, 2)]);
    const merged = mergeListBodies(mergeFor('ImageFsInfo'), [
      { backend: 'a', body: body([fs('/var/lib/a', '1')], [fs('/var/lib/shared', '2')]) },
      { backend: 'b', body: body([fs('/var/lib/b', '3'), fs('/var/lib/shared', '4')], [fs('/var/lib/shared', '5')]) },
    ]);
    const decoded = decodeMessage('runtime.v1.ImageFsInfoResponse', merged) as Record<
      string,
      { fs_id: { mountpoint: string }; used_bytes: { value: string } }[]
    >;
    expect(decoded['image_filesystems']?.map((f) => f.fs_id.mountpoint)).toEqual(['/var/lib/a', '/var/lib/b', '/var/lib/shared']);
    expect(decoded['container_filesystems']?.map((f) => [f.fs_id.mountpoint, f.used_bytes.value])).toEqual([['/var/lib/shared', '2']]);
  });

  test("pods and containers are never deduplicated (their IDs are each runtime's own)", () => {
    const same = encode('Container', { id: 'c1' });
    const merged = mergeListBodies(mergeFor('ListContainers'), [
      { backend: 'a', body: listOf([same]) },
      { backend: 'b', body: listOf([same]) },
    ]);
    expect((decodeMessage('runtime.v1.ListContainersResponse', merged)['containers'] as unknown[]).length).toBe(2);
  });
});

test('a malformed answer fails the merge naming the backend', () => {
  const merge = mergeFor('ListContainers');
  expect(() => mergeListBodies(merge, [{ backend: 'crio', body: Buffer.from([0x0a, 0x05, 0x01]) }])).toThrow(ProxyError);
  expect(() => mergeListBodies(merge, [{ backend: 'crio', body: Buffer.from([0x0a, 0x05, 0x01]) }])).toThrow(
    /backend "crio" sent a malformed runtime.v1.ListContainersResponse/,
  );
});

test('compileListMerge refuses a field that is not a repeated message', () => {
  expect(() => compileListMerge('runtime.v1.VersionResponse', [{ field: 'version' }])).toThrow(/not a top-level repeated message/);
  expect(() => compileListMerge('runtime.v1.ListImagesResponse', [{ field: 'images', uniqueBy: 'nope' }])).toThrow(/no field "nope"/);
});

describe('mergedList: the unary call', () => {
  const path = '/runtime.v1.RuntimeService/ListContainers';
  const request = encode('ListContainersRequest', { filter: { label_selector: { app: 'web' } } });
  const c1 = encode('Container', { id: 'c1' });
  const c2 = encode('Container', { id: 'c2' });

  test('asks every backend with the same request and deadline, and merges', async () => {
    const { call, calls } = fakeCall({ a: { ListContainers: ok(listOf([c1])) }, b: { ListContainers: ok(listOf([c2])) } });
    const answer = await mergedList(
      { call, backends: ['a', 'b'], metadata: [], deadline: 12345 },
      'ListContainers',
      path,
      request,
      mergeFor('ListContainers'),
    );
    expect(answer).toEqual({ code: 0, message: '', body: listOf([c1, c2]) });
    expect(calls.map((c) => [c.backend, c.path, c.request.equals(request), c.deadline])).toEqual([
      ['a', path, true, 12345],
      ['b', path, true, 12345],
    ]);
  });

  test('a backend down: UNAVAILABLE naming it, never a partial list', async () => {
    const { call } = fakeCall({ a: { ListContainers: ok(listOf([c1])) } });
    const answer = await mergedList(
      { call, backends: ['a', 'crio'], metadata: [], deadline: undefined },
      'ListContainers',
      path,
      request,
      mergeFor('ListContainers'),
    );
    expect(answer.code).toBe(14);
    expect(answer.body).toBeUndefined();
    expect(answer.message).toBe(
      'cri-proxy: ListContainers needs every backend; backend "crio" failed: UNAVAILABLE: runtime "crio" at unix:///run/crio.sock is unavailable: connect ENOENT',
    );
  });

  test('the code all failing backends agree on is kept (UNIMPLEMENTED lets kubelet fall back)', async () => {
    const { call } = fakeCall({ a: {}, b: {} });
    const answer = await mergedList(
      { call, backends: ['a', 'b'], metadata: [], deadline: undefined },
      'ListContainers',
      path,
      request,
      mergeFor('ListContainers'),
    );
    expect(answer.code).toBe(12);
    expect(answer.message).toMatch(/backend "a" failed: UNIMPLEMENTED.*; backend "b" failed: UNIMPLEMENTED/);
  });

  test('different failures: UNAVAILABLE naming each', async () => {
    const { call } = fakeCall({ a: { ListContainers: fail(4, 'slow') }, b: { ListContainers: fail(13, 'broken') } });
    const answer = await mergedList(
      { call, backends: ['a', 'b'], metadata: [], deadline: undefined },
      'ListContainers',
      path,
      request,
      mergeFor('ListContainers'),
    );
    expect(answer).toMatchObject({
      code: 14,
      message: expect.stringMatching(/"a" failed: DEADLINE_EXCEEDED: slow; backend "b" failed: INTERNAL: broken$/) as unknown,
    });
  });

  test('a call function that rejects counts as the backend being unavailable', async () => {
    const answer = await mergedList(
      { call: () => Promise.reject(new Error('socket closed')), backends: ['a'], metadata: [], deadline: undefined },
      'ListContainers',
      path,
      request,
      mergeFor('ListContainers'),
    );
    expect(answer).toMatchObject({
      code: 14,
      message: expect.stringContaining('backend "a" failed: UNAVAILABLE: socket closed') as unknown,
    });
  });
});

describe('stream messages', () => {
  const img = (id: string): Buffer => encode('Image', { id });
  const merge = (): ListCollector => new ListCollector(mergeFor('StreamImages'));

  test('a message with only new items goes out as the very same bytes', () => {
    const collector = merge();
    const message = withUnknown(listOf([img('1'), img('2')]));
    expect(filterStreamMessage(collector, 'a', message)).toBe(message);
  });

  test('items already sent are left out; a message with nothing new is not sent', () => {
    const collector = merge();
    filterStreamMessage(collector, 'a', listOf([img('1'), img('2')]));
    expect(filterStreamMessage(collector, 'b', listOf([img('2'), img('3')]))).toEqual(listOf([img('3')]));
    expect(filterStreamMessage(collector, 'b', listOf([img('1')]))).toBeUndefined();
  });

  test('every stream variant merges the items its list does', () => {
    for (const [stream, list] of Object.entries(streamOf)) {
      const s = mergeFor(stream).lists.map((l) => l.key);
      const l = mergeFor(list).lists.map((k) => k.key);
      expect([stream, s]).toEqual([stream, l]);
    }
  });
});
