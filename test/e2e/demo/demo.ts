/**
 * `./scripts/demo.sh`: a private containerd, a local registry with a busybox image, and cri-proxy in front
 * of containerd, with a demo pod running — a way to see the proxy work without a Kubernetes node.
 * `./scripts/demo.sh --routing`: two containerds, one running runc and one crun, behind one cri-proxy that
 * routes pods between them, with a demo pod on each.
 */
import { join, resolve } from 'node:path';
import { createCriClient, stringField, type CriClient } from '../harness/cri-client';
import { startEnvironment, type E2eEnvironment } from '../harness/environment';
import { freePort } from '../harness/processes';
import { CRI_PROXY_CLI, startProxy, type ProxyBackend } from '../harness/proxy';

/** The routing demo's config: pods with RuntimeClass handler "crun" or in namespace "sandboxed" go to crun. */
const ROUTING = [
  '  - name: routing',
  '    type: routing',
  '    onError: failClosed',
  '    config:',
  '      rules:',
  '        - { name: crun-class, backend: crun, match: { runtimeHandlers: ["crun"] } }',
  '        - { name: sandboxed, backend: crun, match: { namespaces: ["sandboxed"] } }',
  '      handlers:',
  '        crun: { crun: "" }      # kubelet\'s "crun" is the crun containerd\'s default handler',
];

async function main(): Promise<void> {
  const routing = process.argv.includes('--routing');
  const env = await startEnvironment(
    routing
      ? {
          containerds: [
            { name: 'containerd', runtime: 'runc' },
            { name: 'containerd-crun', runtime: 'crun' },
          ],
        }
      : {},
  );
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
    await run(env, routing);
  } catch (err) {
    process.stderr.write(`demo failed: ${String(err)}\n`);
    await env.stop();
    process.exit(1);
  }
}

/** Runs pod `name` (in `namespace`) with container "hello"; returns the container's ID. */
async function demoPod(cri: CriClient, env: E2eEnvironment, name: string, namespace: string): Promise<string> {
  const pod = {
    metadata: { name, namespace, uid: `${name}-uid`, attempt: 0 },
    log_directory: join(env.podLogDir, name),
    linux: {},
  };
  await cri.call('PullImage', { image: { image: env.busyboxImage }, sandbox_config: pod });
  const podId = stringField(await cri.call('RunPodSandbox', { config: pod }), 'pod_sandbox_id');
  const created = await cri.call('CreateContainer', {
    pod_sandbox_id: podId,
    sandbox_config: pod,
    config: {
      metadata: { name: 'hello' },
      image: { image: env.busyboxImage },
      command: ['sh', '-c', 'while true; do date; sleep 5; done'],
      log_path: 'hello.log',
    },
  });
  const containerId = stringField(created, 'container_id');
  await cri.call('StartContainer', { container_id: containerId });
  return containerId;
}

async function run(env: E2eEnvironment, routing: boolean): Promise<void> {
  const port = await freePort();
  const auditLog = join(env.workDir, 'audit.log');
  const backends: ProxyBackend[] = routing
    ? [
        { name: 'runc', socket: env.containerd('containerd').socket },
        { name: 'crun', socket: env.containerd('containerd-crun').socket },
      ]
    : [{ name: 'containerd', socket: env.containerdSocket }];
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
      ...(routing ? ROUTING : []),
    ].join('\n'),
    backends,
  );
  const cri = createCriClient(proxy.socketPath);
  const containerId = await demoPod(cri, env, 'demo', 'default');
  const sandboxedId = routing ? await demoPod(cri, env, 'demo-sandboxed', 'sandboxed') : undefined;
  cri.close();

  const call = `node ${resolve(__dirname, 'cri-call.js')} --socket ${proxy.socketPath}`;
  const cli = `node ${CRI_PROXY_CLI}`;
  const runtimes = backends.map((b) => `  ${`runtime "${b.name}":`.padEnd(39)}unix://${b.socket}`).join('\n');
  const routed =
    sandboxedId === undefined
      ? ''
      : `
Pod "demo" runs on runc, pod "demo-sandboxed" (namespace "sandboxed") on crun (${sandboxedId.slice(0, 12)}).
Each runtime lists only its own; the proxy lists both:

  node ${resolve(__dirname, 'cri-call.js')} --socket ${backends[1]?.socket ?? ''} ListPodSandbox
  ${call} ListPodSandbox
  ${call} ExecSync '{"container_id":"${sandboxedId}","cmd":["cat","/proc/self/cgroup"],"timeout":10}'
  curl -s http://127.0.0.1:${port}/readyz
`;
  process.stdout.write(`
cri-proxy demo is running (Ctrl-C stops and cleans up everything).

  CRI socket (point a CRI client here):  unix://${proxy.socketPath}
  pod starts (open in a browser):        http://127.0.0.1:${port}/pods
  metrics, health:                       http://127.0.0.1:${port}/metrics  /healthz  /readyz
${runtimes}
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
  ${cli} pods --url http://127.0.0.1:${port}            # the pod starts above, with a waterfall each
${routed}`);
}

void main();
