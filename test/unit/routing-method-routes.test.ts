import { compileListMerge } from '../../src/interceptors/routing/list-merge';
import { methodRoutes, type RouteEntry } from '../../src/interceptors/routing/method-routes';
import { resolvePath } from '../../src/messages/wire-paths';
import { methodTable } from '../../src/chain/method-table';
import type { MethodInfo } from '../../src/chain/types';

const rows = methodTable.map((m) => [m.name, m, methodRoutes[m.name] as RouteEntry] as const);

/** Checks the path names a string field (through singular messages, or across repeated ones when allowed). */
function stringPath(type: string, path: string, repeatedAllowed = false): void {
  if (!repeatedAllowed) {
    const resolved = resolvePath(type, path);
    expect(resolved.repeated).toBe(false);
    expect(resolved.type).toBeUndefined();
    return;
  }
  const [head, ...rest] = path.split('.');
  const list = resolvePath(type, head ?? '');
  expect(list.repeated).toBe(true);
  stringPath(list.type?.fullName.slice(1) ?? '', rest.join('.'));
}

describe('routing method routes', () => {
  test('classify every method of the table, and nothing else', () => {
    expect(Object.keys(methodRoutes).sort()).toEqual(methodTable.map((m) => m.name).sort());
  });

  test.each(rows)('%s: its route fits the method', (_name, method: MethodInfo, entry) => {
    const { route } = entry;
    const request = method.requestType ?? '';
    const response = method.responseType ?? '';
    const streaming = method.kind === 'server-stream';
    expect(streaming).toBe(route.kind === 'merge-stream' || route.kind === 'events');
    if (route.kind === 'sandbox' || route.kind === 'container') stringPath(request, route.field);
    if (route.kind === 'merge' || route.kind === 'merge-stream') expect(() => compileListMerge(response, route.lists)).not.toThrow();
    if (entry.handlerField !== undefined) stringPath(request, entry.handlerField);
    const effect = entry.ownership ?? {};
    for (const path of [effect.sandboxId, effect.containerId]) if (path !== undefined) stringPath(response, path);
    for (const path of [effect.podUid, effect.sandboxOfContainer, effect.forgetSandbox, effect.forgetContainer]) {
      if (path !== undefined) stringPath(request, path);
    }
    if (effect.containerIds !== undefined) stringPath(response, effect.containerIds, true);
  });

  test('a call naming a sandbox or container goes to its owner; the route names the field the method table does', () => {
    for (const [, method, { route }] of rows) {
      if (route.kind === 'sandbox') expect(method.requestFields.sandboxId).toBe(route.field);
      if (route.kind === 'container') expect(method.requestFields.containerId).toBe(route.field);
    }
  });

  test('handlers and ownership are read where the method table says the handler and IDs lie', () => {
    for (const [name, method, entry] of rows) {
      const { requestFields: req, responseFields: res } = method;
      if (entry.handlerField !== undefined && req.runtimeHandler !== undefined)
        expect([name, entry.handlerField]).toEqual([name, req.runtimeHandler]);
      const effect = entry.ownership ?? {};
      if (effect.sandboxId !== undefined) expect([name, effect.sandboxId]).toEqual([name, res.sandboxId]);
      if (effect.containerId !== undefined) expect([name, effect.containerId]).toEqual([name, res.containerId]);
      if (effect.podUid !== undefined) expect([name, effect.podUid]).toEqual([name, req.podUid]);
      for (const id of [effect.sandboxOfContainer, effect.forgetSandbox])
        if (id !== undefined) expect([name, id]).toEqual([name, req.sandboxId]);
      if (effect.forgetContainer !== undefined) expect([name, effect.forgetContainer]).toEqual([name, req.containerId]);
    }
  });

  test('every list method and its stream variant merge the same items', () => {
    const kinds = Object.fromEntries(rows.map(([name, , e]) => [name, e.route.kind]));
    for (const name of [
      'ListPodSandbox',
      'ListContainers',
      'ListContainerStats',
      'ListPodSandboxStats',
      'ListImages',
      'ListPodSandboxMetrics',
      'ListMetricDescriptors',
      'ImageFsInfo',
    ]) {
      expect([name, kinds[name]]).toEqual([name, 'merge']);
    }
    for (const name of [
      'StreamPodSandboxes',
      'StreamContainers',
      'StreamContainerStats',
      'StreamPodSandboxStats',
      'StreamImages',
      'StreamPodSandboxMetrics',
    ]) {
      expect([name, kinds[name]]).toEqual([name, 'merge-stream']);
    }
    const unique = (name: string): unknown => {
      const route = methodRoutes[name]?.route;
      return route !== undefined && 'lists' in route ? route.lists.map((l) => l.uniqueBy) : undefined;
    };
    expect(unique('StreamImages')).toEqual(unique('ListImages'));
  });

  test('node-wide calls', () => {
    const kind = (name: string): string | undefined => methodRoutes[name]?.route.kind;
    expect([kind('Version'), kind('RuntimeConfig'), kind('UpdateRuntimeConfig'), kind('Status')]).toEqual([
      'default',
      'runtime-config',
      'all',
      'status',
    ]);
  });

  test('ownership is learned where IDs are born and forgotten where they die', () => {
    const learns = rows.filter(([, , e]) => e.ownership?.sandboxId !== undefined || e.ownership?.containerId !== undefined).map(([n]) => n);
    expect(learns.sort()).toEqual(['CreateContainer', 'RestorePod', 'RunPodSandbox']);
    const forgets = rows
      .filter(([, , e]) => e.ownership?.forgetSandbox !== undefined || e.ownership?.forgetContainer !== undefined)
      .map(([n]) => n);
    expect(forgets.sort()).toEqual(['RemoveContainer', 'RemovePodSandbox']);
  });
});
