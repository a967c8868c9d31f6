import { criRoot, messageType } from '../../src/messages/codec';
import { MethodColumn, fieldPath, lookupMethod, methodTable } from '../../src/chain/method-table';
import type { CriField } from '../../src/chain/types';
import { stringPathProblem } from '../support/field-paths';

const services = ['runtime.v1.RuntimeService', 'runtime.v1.ImageService'].map((name) => criRoot().lookupService(name));
const protoMethods = services.flatMap((service) =>
  service.methodsArray.map((method) => ({ service, method, path: `/${service.fullName.slice(1)}/${method.name}` })),
);

describe('method table', () => {
  it('has one row per rpc of the schema, 43 in all, 7 of them server-streaming', () => {
    expect(methodTable).toHaveLength(43);
    expect(protoMethods).toHaveLength(43);
    expect(new Set(methodTable.map((m) => m.path))).toEqual(new Set(protoMethods.map((m) => m.path)));
    expect(methodTable.filter((m) => m.kind === 'server-stream')).toHaveLength(7);
  });

  it.each(protoMethods.map((p) => [p.path, p] as const))('%s matches the schema', (path, { service, method }) => {
    const info = lookupMethod(path);
    method.resolve();
    expect(info).toMatchObject({
      path,
      service: service.fullName.slice(1),
      name: method.name,
      known: true,
      kind: method.responseStream ? 'server-stream' : 'unary',
      requestType: method.resolvedRequestType?.fullName.slice(1),
      responseType: method.resolvedResponseType?.fullName.slice(1),
    });
    expect(method.requestStream).toBeFalsy();
  });

  it('names only request and response types that exist', () => {
    for (const m of methodTable) {
      expect(() => messageType(m.requestType ?? '')).not.toThrow();
      expect(() => messageType(m.responseType ?? '')).not.toThrow();
    }
  });

  it('names only field paths that reach a string field of the message', () => {
    const problems: string[] = [];
    for (const m of methodTable) {
      const check = (typeName: string | undefined, fields: typeof m.requestFields): void => {
        for (const [field, path] of Object.entries(fields)) {
          const problem = stringPathProblem(typeName ?? '', path);
          if (problem) problems.push(`${m.name} ${field} ${path}: ${problem}`);
        }
      };
      check(m.requestType, m.requestFields);
      check(m.responseType, m.responseFields);
    }
    expect(problems).toEqual([]);
    // The checker itself must reject what fieldAt could never read.
    expect(stringPathProblem('runtime.v1.RunPodSandboxRequest', 'config.metadata.nam')).toBeDefined();
    expect(stringPathProblem('runtime.v1.RunPodSandboxRequest', 'config.metadata')).toBeDefined();
    expect(stringPathProblem('runtime.v1.RunPodSandboxRequest', 'config.labels.x')).toBeDefined();
    expect(stringPathProblem('runtime.v1.PodSandboxStatusResponse', 'containers_statuses.id')).toBeDefined();
  });

  it('marks exactly the state-changing methods as mutating', () => {
    expect(
      methodTable
        .filter((m) => m.mutating)
        .map((m) => m.name)
        .sort(),
    ).toEqual(
      [
        'RunPodSandbox',
        'StopPodSandbox',
        'RemovePodSandbox',
        'CreateContainer',
        'StartContainer',
        'StopContainer',
        'RemoveContainer',
        'UpdateContainerResources',
        'ReopenContainerLog',
        'ExecSync',
        'Exec',
        'Attach',
        'PortForward',
        'UpdateRuntimeConfig',
        'CheckpointContainer',
        'CheckpointPod',
        'RestorePod',
        'UpdatePodSandboxResources',
        'PullImage',
        'RemoveImage',
      ].sort(),
    );
  });

  it('marks reads that kubelet repeats as polling, and nothing mutating', () => {
    const expected = methodTable
      .map((m) => m.name)
      .filter((n) => /^(List|Stream)|Status$|Stats$/.test(n) || ['ImageFsInfo', 'Version', 'RuntimeConfig'].includes(n));
    expect(methodTable.filter((m) => m.polling).map((m) => m.name)).toEqual(expected);
    expect(methodTable.filter((m) => m.polling && m.mutating)).toEqual([]);
    expect(lookupMethod('/runtime.v1.RuntimeService/GetContainerEvents').polling).toBe(false);
  });

  it.each<[string, Partial<Record<CriField, string>>, Partial<Record<CriField, string>>]>([
    [
      '/runtime.v1.RuntimeService/RunPodSandbox',
      {
        podName: 'config.metadata.name',
        podNamespace: 'config.metadata.namespace',
        podUid: 'config.metadata.uid',
        runtimeHandler: 'runtime_handler',
      },
      { sandboxId: 'pod_sandbox_id' },
    ],
    [
      '/runtime.v1.RuntimeService/CreateContainer',
      {
        sandboxId: 'pod_sandbox_id',
        podName: 'sandbox_config.metadata.name',
        podNamespace: 'sandbox_config.metadata.namespace',
        podUid: 'sandbox_config.metadata.uid',
        containerName: 'config.metadata.name',
        image: 'config.image.image',
      },
      { containerId: 'container_id' },
    ],
    [
      '/runtime.v1.ImageService/PullImage',
      {
        image: 'image.image',
        runtimeHandler: 'image.runtime_handler',
        podName: 'sandbox_config.metadata.name',
        podNamespace: 'sandbox_config.metadata.namespace',
        podUid: 'sandbox_config.metadata.uid',
      },
      { image: 'image_ref' },
    ],
    ['/runtime.v1.RuntimeService/StopContainer', { containerId: 'container_id' }, {}],
    ['/runtime.v1.RuntimeService/Version', {}, {}],
  ])('%s carries its identity fields', (path, request, response) => {
    const info = lookupMethod(path);
    expect(info.requestFields).toEqual(request);
    expect(info.responseFields).toEqual(response);
  });

  it('returns the same row object for a known path', () => {
    const path = '/runtime.v1.RuntimeService/ListContainers';
    expect(lookupMethod(path)).toBe(lookupMethod(path));
    expect(lookupMethod(path)).toBe(methodTable.find((m) => m.path === path));
  });

  it('describes an unknown method from its path, and caches the descriptor', () => {
    const path = '/runtime.v2.RuntimeService/FutureCall';
    const info = lookupMethod(path);
    expect(info).toEqual({
      path,
      service: 'runtime.v2.RuntimeService',
      name: 'FutureCall',
      known: false,
      kind: 'unknown',
      mutating: false,
      polling: false,
      watch: false,
      requestType: undefined,
      responseType: undefined,
      requestFields: {},
      responseFields: {},
    });
    expect(lookupMethod(path)).toBe(info);
  });

  it('marks GetContainerEvents, and nothing else, as a watch that shutdown ends', () => {
    expect(methodTable.filter((m) => m.watch).map((m) => m.name)).toEqual(['GetContainerEvents']);
  });

  it('names each method once across both services, so feature columns can key by name', () => {
    expect(new Set(methodTable.map((m) => m.name)).size).toBe(methodTable.length);
  });

  it.each(['', 'nonsense', '/only-service', '/a/b/c', '//Method'])('treats malformed path %j as unknown', (path) => {
    expect(lookupMethod(path)).toMatchObject({ path, service: '', name: path, known: false, kind: 'unknown' });
  });
});

describe('feature columns of the table', () => {
  const pull = lookupMethod('/runtime.v1.ImageService/PullImage');

  it('give each named method its value, built from its row where asked, and nothing to others', () => {
    const column = new MethodColumn<string>({ PullImage: 'a', Version: (m) => m.path });
    expect(column.of(pull)).toBe('a');
    expect(column.of(lookupMethod('/runtime.v1.RuntimeService/Version'))).toBe('/runtime.v1.RuntimeService/Version');
    expect(column.of(lookupMethod('/runtime.v1.RuntimeService/Status'))).toBeUndefined();
    expect(column.of(lookupMethod('/runtime.v2.ImageService/PullImage'))).toBeUndefined();
    expect(column.byName).toEqual({ PullImage: 'a', Version: '/runtime.v1.RuntimeService/Version' });
  });

  it('refuse a key that names no method of the table', () => {
    expect(() => new MethodColumn({ PullImages: 'a' })).toThrow(/PullImages/);
  });

  it("read field paths from the table, and refuse a field the method's row lacks", () => {
    expect(fieldPath(pull, 'image')).toBe('image.image');
    expect(fieldPath(pull, 'image', 'response')).toBe('image_ref');
    expect(() => fieldPath(pull, 'containerId')).toThrow(/PullImage/);
  });
});
