import * as grpc from '@grpc/grpc-js';
import type { Registry } from 'prom-client';
import { GENESIS_HASH } from '../../src/audit/line-format';
import { verifyAuditFiles } from '../../src/audit/verify';
import { ProxyError } from '../../src/errors';
import { policyDecisionKey, type PolicyDecisionRecord } from '../../src/policies/decision-key';
import { encodeMessage } from '../../src/messages/codec';
import type { Interceptor } from '../../src/chain/types';
import { lookupMethod } from '../../src/chain/method-table';
import { makeTempDir } from '../support/proxy-harness';
import { removeAuditDirs, startAudit, type AuditHarness } from '../support/audit-harness';
import { waitFor } from '../support/wait';

const RT = '/runtime.v1.RuntimeService';
const IMG = '/runtime.v1.ImageService';

const sandboxConfig = { metadata: { name: 'web-0', namespace: 'shop', uid: 'uid-123', attempt: 0 } };
const createRequest = (extra: Record<string, unknown> = {}): Buffer =>
  encodeMessage('runtime.v1.CreateContainerRequest', {
    pod_sandbox_id: 'sb-1',
    config: {
      metadata: { name: 'app' },
      image: { image: 'registry.example/shop/app:1.2' },
      command: ['/bin/app'],
      envs: [{ key: 'MODE', value: Buffer.from('production') }],
      mounts: [{ container_path: '/data', host_path: '/var/lib/shop', readonly: true }],
      linux: { security_context: { privileged: true } },
      ...extra,
    },
    sandbox_config: sandboxConfig,
  });

afterAll(removeAuditDirs);

async function counted(registry: Registry, name: string): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => v.labels.interceptor === 'audit')?.value ?? 0;
}

describe('audit interceptor', () => {
  let h: AuditHarness;
  afterEach(async () => {
    await h.close();
  });

  test('CreateContainer: identity from request and response, curated details, outcome', async () => {
    h = await startAudit();
    h.proxy.runtime.on('CreateContainer', { respond: encodeMessage('runtime.v1.CreateContainerResponse', { container_id: 'c-42' }) });
    const result = await h.client.unary(`${RT}/CreateContainer`, createRequest());
    expect(result.status.code).toBe(grpc.status.OK);
    const [record] = h.records();
    expect(record).toMatchObject({
      seq: 1,
      prev: GENESIS_HASH,
      method: 'CreateContainer',
      pod: { namespace: 'shop', name: 'web-0', uid: 'uid-123' },
      container: { name: 'app', id: 'c-42' },
      sandboxId: 'sb-1',
      image: 'registry.example/shop/app:1.2',
      env: [{ name: 'MODE', value: '[redacted]' }],
      mounts: [{ hostPath: '/var/lib/shop', containerPath: '/data', readonly: true }],
      privileged: true,
      backend: 'fake',
      outcome: { code: 0, status: 'OK' },
    });
    expect(record?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(typeof record?.durationMs).toBe('number');
    expect(record?.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await counted(h.registry, 'cri_proxy_audit_records_total')).toBe(1);
  });

  test('PullImage, ExecSync, RunPodSandbox and a runtime error', async () => {
    h = await startAudit();
    h.proxy.runtime.on('PullImage', { respond: encodeMessage('runtime.v1.PullImageResponse', { image_ref: 'sha256:abc' }) });
    h.proxy.runtime.on('RunPodSandbox', { respond: encodeMessage('runtime.v1.RunPodSandboxResponse', { pod_sandbox_id: 'sb-9' }) });
    h.proxy.runtime.on('StopContainer', { fail: { code: grpc.status.NOT_FOUND, message: 'no such container' } });
    await h.client.unary(
      `${IMG}/PullImage`,
      encodeMessage('runtime.v1.PullImageRequest', { image: { image: 'nginx:1.27' }, sandbox_config: sandboxConfig }),
    );
    await h.client.unary(
      `${RT}/ExecSync`,
      encodeMessage('runtime.v1.ExecSyncRequest', { container_id: 'c-1', cmd: ['sh', '-c', 'id'], timeout: 10 }),
    );
    await h.client.unary(
      `${RT}/RunPodSandbox`,
      encodeMessage('runtime.v1.RunPodSandboxRequest', { config: sandboxConfig, runtime_handler: 'runc' }),
    );
    const stop = await h.client.unary(
      `${RT}/StopContainer`,
      encodeMessage('runtime.v1.StopContainerRequest', { container_id: 'c-7', timeout: 30 }),
    );
    expect(stop.status.code).toBe(grpc.status.NOT_FOUND);
    const records = h.records();
    expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(records[0]).toMatchObject({ method: 'PullImage', image: 'nginx:1.27', imageRef: 'sha256:abc', pod: { namespace: 'shop' } });
    expect(records[1]).toMatchObject({ method: 'ExecSync', container: { id: 'c-1' }, command: ['sh', '-c', 'id'], timeout: 10 });
    expect(records[2]).toMatchObject({ method: 'RunPodSandbox', sandboxId: 'sb-9', runtimeHandler: 'runc', pod: { name: 'web-0' } });
    expect(records[3]).toMatchObject({ method: 'StopContainer', outcome: { code: 5, status: 'NOT_FOUND', message: 'no such container' } });
    expect((await verifyAuditFiles([h.path])).ok).toBe(true);
  });

  test('reads are left out unless includeReads', async () => {
    h = await startAudit();
    await h.client.unary(`${RT}/Version`, Buffer.alloc(0));
    await h.client.unary(`${RT}/ListContainers`, Buffer.alloc(0));
    await h.client.unary(`${RT}/ContainerStatus`, encodeMessage('runtime.v1.ContainerStatusRequest', { container_id: 'c-1' }));
    await h.client.unary(`${RT}/StartContainer`, encodeMessage('runtime.v1.StartContainerRequest', { container_id: 'c-1' }));
    expect(h.records().map((r) => r.method)).toEqual(['StartContainer']);
    await h.close();

    expect(h.audit.appliesTo?.(lookupMethod(`${RT}/ListContainers`))).toBe(false);
    expect(h.audit.appliesTo?.(lookupMethod(`${RT}/StartContainer`))).toBe(true);
    expect(h.audit.appliesTo?.(lookupMethod('/runtime.v2.Future/Thing'))).toBe(true);

    h = await startAudit({ config: { includeReads: true } });
    expect(h.audit.appliesTo?.(lookupMethod(`${RT}/ListContainers`))).toBe(true);
    await h.client.unary(`${RT}/Version`, Buffer.alloc(0));
    await h.client.unary(`${RT}/ContainerStatus`, encodeMessage('runtime.v1.ContainerStatusRequest', { container_id: 'c-1' }));
    expect(h.records().map((r) => [r.method, (r.container as { id?: string } | undefined)?.id])).toEqual([
      ['Version', undefined],
      ['ContainerStatus', 'c-1'],
    ]);
  });

  test('call order is preserved under concurrency', async () => {
    h = await startAudit();
    const ids = Array.from({ length: 12 }, (_, i) => `c-${i}`);
    const answered: string[] = [];
    const results = await Promise.all(
      ids.map((id) =>
        h.client.unary(`${RT}/StartContainer`, encodeMessage('runtime.v1.StartContainerRequest', { container_id: id })).then((r) => {
          answered.push(id);
          return r;
        }),
      ),
    );
    expect(results.every((r) => r.status.code === grpc.status.OK)).toBe(true);
    const records = h.records();
    expect(records.map((r) => r.seq)).toEqual(ids.map((_, i) => i + 1));
    // A call's status goes out only after its record is written, so answers come in record order.
    expect(records.map((r) => (r.container as { id: string }).id)).toEqual(answered);
    // Records follow the order the calls finished: a slow call is recorded after quicker ones.
    h.proxy.runtime.on('StopContainer', { delayMs: 150 });
    const slow = h.client.unary(`${RT}/StopContainer`, encodeMessage('runtime.v1.StopContainerRequest', { container_id: 'slow' }));
    await waitFor(() => h.proxy.runtime.calls.some((c) => c.name === 'StopContainer'));
    await h.client.unary(`${RT}/RemoveContainer`, encodeMessage('runtime.v1.RemoveContainerRequest', { container_id: 'quick' }));
    await slow;
    expect(
      h
        .records()
        .slice(-2)
        .map((r) => r.method),
    ).toEqual(['RemoveContainer', 'StopContainer']);
    expect((await verifyAuditFiles([h.path])).ok).toBe(true);
  });

  test('a call the proxy itself fails is recorded with the proxy error', async () => {
    h = await startAudit({ runtimeDown: true });
    const result = await h.client.unary(`${RT}/StartContainer`, encodeMessage('runtime.v1.StartContainerRequest', { container_id: 'c-1' }));
    expect(result.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(h.records()[0]).toMatchObject({ method: 'StartContainer', outcome: { code: 14, status: 'UNAVAILABLE', fromProxy: true } });
  });

  test('the image policy decision is recorded, a deny included', async () => {
    const decision: PolicyDecisionRecord = { action: 'deny', rule: 'no-latest', reason: 'tag latest is not allowed', mode: 'enforce' };
    const policy: Interceptor = {
      name: 'policy',
      intercept: (ctx) => {
        ctx.state.set(policyDecisionKey, decision);
        return Promise.reject(new ProxyError('POLICY_DENIED', 'image denied'));
      },
    };
    h = await startAudit({ after: [policy] });
    const result = await h.client.unary(
      `${IMG}/PullImage`,
      encodeMessage('runtime.v1.PullImageRequest', { image: { image: 'nginx:latest' } }),
    );
    expect(result.status.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(h.records()[0]).toMatchObject({ method: 'PullImage', policy: decision, outcome: { code: 7, message: 'image denied' } });
  });

  test('a new interceptor on the same file continues the chain (restart)', async () => {
    const dir = makeTempDir('cri-proxy-audit-');
    h = await startAudit({ dir });
    await h.client.unary(`${RT}/StartContainer`, encodeMessage('runtime.v1.StartContainerRequest', { container_id: 'a' }));
    await h.close();
    h = await startAudit({ dir });
    await h.client.unary(`${RT}/StartContainer`, encodeMessage('runtime.v1.StartContainerRequest', { container_id: 'b' }));
    expect(h.records().map((r) => r.seq)).toEqual([1, 2]);
    expect(await verifyAuditFiles([h.path])).toMatchObject({ ok: true, records: 2 });
  });
});
