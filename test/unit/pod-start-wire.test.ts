import { fieldPath, methodTable } from '../../src/chain/method-table';
import { encodeMessage } from '../../src/messages/codec';
import { WireFormatError } from '../../src/messages/protobuf-wire';
import { resolvePath } from '../../src/messages/wire-paths';
import { imageStatusFacts, podStartWirePaths, wireString } from '../../src/observability/pod-start-wire';
import { imageSizeAnswers, podStartImages, podStartPhases } from '../../src/observability/pod-start-phases';

const entries = Object.entries(podStartWirePaths).flatMap(([type, paths]) =>
  Object.entries(paths).map(([path, numbers]) => [type, path, numbers] as const),
);

describe('the field numbers pod starts are read by', () => {
  test.each(entries)('%s %s is field %j in the schema', (type, path, numbers) => {
    expect(resolvePath(type, path).numbers).toEqual(numbers);
  });

  test('every path the feed reads is written down: the pod start methods, the images they name, ImageStatus', () => {
    const missing: string[] = [];
    const has = (type: string | undefined, path: string): void => {
      if (type === undefined || podStartWirePaths[type]?.[path] === undefined) missing.push(`${type ?? '?'} ${path}`);
    };
    const watched = methodTable.filter((m) => podStartPhases.of(m) !== undefined || imageSizeAnswers.of(m) !== undefined);
    expect(watched).toHaveLength(5);
    for (const method of watched) {
      if (podStartPhases.of(method) !== undefined) {
        for (const path of Object.values(method.requestFields)) has(method.requestType, path);
        for (const path of podStartImages.of(method) ?? []) has(method.requestType, path);
      }
      for (const path of Object.values(method.responseFields)) has(method.responseType, path);
    }
    const pull = methodTable.find((m) => m.name === 'PullImage');
    if (pull) has(pull.responseType, fieldPath(pull, 'image', 'response'));
    for (const path of ['image', 'image.id', 'image.repo_digests', 'image.size']) has('runtime.v1.ImageStatusResponse', path);
    expect(missing).toEqual([]);
  });

  test('a path that is not written down is a defect, not an absent field', () => {
    expect(() => wireString(Buffer.alloc(0), 'runtime.v1.StartContainerRequest', 'config.metadata.name')).toThrow(/not written down/);
    expect(() => wireString(Buffer.alloc(0), undefined, 'container_id')).toThrow(/not written down/);
  });
});

describe('reading pod start fields on the wire', () => {
  const type = 'runtime.v1.CreateContainerRequest';
  const request = encodeMessage(type, {
    pod_sandbox_id: 'sb1',
    config: { metadata: { name: 'app' }, image: { image: 'sha256:abc', user_specified_image: 'nginx:1' }, command: ['sh', '-c'] },
    sandbox_config: { metadata: { name: 'web', uid: 'u1', namespace: 'default' } },
  });

  test('strings at nested paths; unset and empty alike are undefined', () => {
    expect(wireString(request, type, 'config.image.user_specified_image')).toBe('nginx:1');
    expect(wireString(request, type, 'sandbox_config.metadata.uid')).toBe('u1');
    expect(wireString(request, type, 'pod_sandbox_id')).toBe('sb1');
    expect(wireString(encodeMessage(type, { pod_sandbox_id: '' }), type, 'pod_sandbox_id')).toBeUndefined();
    expect(wireString(Buffer.alloc(0), type, 'config.metadata.name')).toBeUndefined();
  });

  test('bytes that are no protobuf message throw WireFormatError', () => {
    expect(() => wireString(Buffer.from([0x0a, 0xff, 0xff, 0xff]), type, 'pod_sandbox_id')).toThrow(WireFormatError);
  });

  test('an ImageStatus answer: id, repo digests and a size beyond 32 bits', () => {
    const answer = encodeMessage('runtime.v1.ImageStatusResponse', {
      image: { id: 'sha256:1', repo_tags: ['x:1'], repo_digests: ['x@sha256:2', 'y@sha256:3'], size: '6000000000' },
      info: { k: 'v' },
    });
    expect(imageStatusFacts(answer)).toEqual({ id: 'sha256:1', repoDigests: ['x@sha256:2', 'y@sha256:3'], size: 6_000_000_000 });
    expect(imageStatusFacts(encodeMessage('runtime.v1.ImageStatusResponse', { image: {} }))).toEqual({
      id: undefined,
      repoDigests: [],
      size: undefined,
    });
    expect(imageStatusFacts(Buffer.alloc(0))).toBeUndefined();
  });
});
