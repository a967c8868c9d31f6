/**
 * `./scripts/demo.sh`: a private containerd, a local registry with a busybox image, and cri-proxy in front
 * of containerd, with a demo pod running — a way to see the proxy work without a Kubernetes node.
 */
import { join, resolve } from 'node:path';
import { createCriClient, stringField } from '../harness/cri-client';
import { startEnvironment, type E2eEnvironment } from '../harness/environment';
import { freePort } from '../harness/processes';
import { CRI_PROXY_CLI, startProxy } from '../harness/proxy';

async function main(): Promise<void> {
  const env = await startEnvironment();
  // The environment's processes do not hold the event loop open; the demo runs until Ctrl-C.
  const keepAlive = setInterval(() => undefined, 60_000);
  const stop = async (): Promise<void> => {
    clearInterval(keepAlive);
    process.stdout.write('\nstopping: pods, cri-proxy, containerd, registry…\n');
    await env.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  try {
    await run(env);
  } catch (err) {
    process.stderr.write(`demo failed: ${String(err)}\n`);
    await env.stop();
    process.exit(1);
  }
}

async function run(env: E2eEnvironment): Promise<void> {
  const port = await freePort();
  const auditLog = join(env.workDir, 'audit.log');
  const proxy = await startProxy(
    env,
    'cri-proxy',
    [
      'http:',
      `  listen: 127.0.0.1:${port}`,
      'interceptors:',
      '  - name: metrics',
      '    type: metrics',
      '    onError: failOpen',
      '  - name: audit',
      '    type: audit',
      '    config:',
      `      path: ${auditLog}`,
    ].join('\n'),
  );
  const cri = createCriClient(proxy.socketPath);
  const pod = {
    metadata: { name: 'demo', namespace: 'default', uid: 'demo-uid', attempt: 0 },
    log_directory: join(env.podLogDir, 'demo'),
    linux: {},
  };
  await cri.call('PullImage', { image: { image: env.busyboxImage } });
  const podId = stringField(await cri.call('RunPodSandbox', { config: pod }), 'pod_sandbox_id');
  const created = await cri.call('CreateContainer', {
    pod_sandbox_id: podId,
    sandbox_config: pod,
    config: { metadata: { name: 'hello' }, image: { image: env.busyboxImage }, command: ['sh', '-c', 'while true; do date; sleep 5; done'], log_path: 'hello.log' },
  });
  const containerId = stringField(created, 'container_id');
  await cri.call('StartContainer', { container_id: containerId });
  cri.close();

  const call = `node ${resolve(__dirname, 'cri-call.js')} --socket ${proxy.socketPath}`;
  const cli = `node ${CRI_PROXY_CLI}`;
  process.stdout.write(`
cri-proxy demo is running (Ctrl-C stops and cleans up everything).

  CRI socket (point a CRI client here):  unix://${proxy.socketPath}
  metrics, health:                       http://127.0.0.1:${port}/metrics  /healthz  /readyz
  containerd behind it:                  unix://${env.containerdSocket}
  local registry image:                  ${env.busyboxImage}
  audit log:                             ${auditLog}
  proxy log:                             ${join(env.logDir, 'cri-proxy.log')}

A pod "demo" runs container "hello" (${containerId.slice(0, 12)}). Try, in another shell:

  ${call} Version
  ${call} ListPodSandbox
  ${call} ListContainers
  ${call} ExecSync '{"container_id":"${containerId}","cmd":["uname","-a"],"timeout":10}'
  ${call} ContainerStats '{"container_id":"${containerId}"}'
  ${call} PullImage '{"image":{"image":"${env.registryHost}/library/missing:1.0"}}'   # an error, relayed as is
  curl -s http://127.0.0.1:${port}/metrics | grep '^cri_proxy_calls_total'
  ${cli} audit verify ${auditLog}
`);
}

void main();
