/**
 * The release as an operator installs it: the tarball's contents, its single executable started with no
 * Node.js on the PATH — in front of a real containerd, with a real pod, and on a socket passed in as systemd
 * does — and the npm package installing the command.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { SocketActivation } from '../support/socket-activation';
import { createCriClient, listField, numberField, stringField, type CriClient } from './harness/cri-client';
import { startEnvironment, type E2eEnvironment } from './harness/environment';
import { startOtlpGrpcReceiver, startOtlpReceiver, type OtlpGrpcReceiver, type OtlpReceiver } from './harness/otlp-receiver';
import { run, waitForUnixSocket, waitUntil } from './harness/processes';
import { nodeOnPath, npmPackage, packageVersion, releaseTarball, unpackRelease, type UnpackedRelease } from './harness/release';
import { OciRegistry } from '../support/oci-registry';
import { attachBundle, cosignSignWithKey, generateKey, MockSigstore, signatureStatement } from '../support/signing';

jest.setTimeout(600_000);

const ROOT = resolve(__dirname, '../..');
const execFileP = promisify(execFile);

let release: UnpackedRelease;

beforeAll(async () => {
  release = await unpackRelease(await releaseTarball());
});

afterAll(() => {
  if (release !== undefined) rmSync(resolve(release.dir, '..'), { recursive: true, force: true });
});

/** Runs the release's executable with nothing but an empty PATH in its environment. */
function runReleased(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return execFileP(release.executable, [...args], { env: { PATH: release.pathWithoutNode }, cwd: release.dir }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: unknown) => {
      const failed = err as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    },
  );
}

describe('the release tarball', () => {
  test('holds the executable, the systemd units, the example /etc/cri-proxy, INSTALL and install.sh', async () => {
    const { stdout } = await run('tar', ['-tzvf', release.tarball]);
    const entries = stdout
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/))
      .filter((fields) => !(fields[0] ?? '').startsWith('d'))
      .map((fields) => ({ mode: fields[0], owner: fields[1], path: (fields[5] ?? '').split('/').slice(1).join('/') }));
    expect(entries.map((e) => e.path).sort()).toEqual([
      'INSTALL',
      'build-info.json',
      'cri-proxy',
      'doc/operations.md',
      'etc/cri-proxy/cri-proxy.yaml',
      'etc/cri-proxy/policies/image-policy-rules.yaml',
      'install.sh',
      'systemd/cri-proxy.service',
      'systemd/cri-proxy.socket',
    ]);
    expect(entries.find((e) => e.path === 'cri-proxy')?.mode).toBe('-rwxr-xr-x');
    expect(entries.find((e) => e.path === 'install.sh')?.mode).toBe('-rwxr-xr-x');
    expect(new Set(entries.map((e) => e.owner))).toEqual(new Set(['0/0']));
    // What ships is what the repository holds.
    const shipped: Record<string, string> = {
      'systemd/cri-proxy.service': 'deploy/systemd/cri-proxy.service',
      'systemd/cri-proxy.socket': 'deploy/systemd/cri-proxy.socket',
      'etc/cri-proxy/cri-proxy.yaml': 'deploy/systemd/cri-proxy.yaml',
      'etc/cri-proxy/policies/image-policy-rules.yaml': 'config/policies/image-policy-rules.yaml',
      'install.sh': 'deploy/systemd/install.sh',
      INSTALL: 'deploy/systemd/INSTALL',
      'doc/operations.md': 'docs/operations.md',
    };
    for (const [inTarball, inRepo] of Object.entries(shipped)) {
      expect(readFileSync(join(release.dir, inTarball), 'utf8')).toBe(readFileSync(join(ROOT, inRepo), 'utf8'));
    }
    // One self-contained file: far larger than any script, since Node.js itself is inside.
    expect(statSync(release.executable).size).toBeGreaterThan(50 * 1024 * 1024);
  });

  test('its executable starts with no node on the PATH: --version gives version and commit, config validate works', async () => {
    expect(nodeOnPath(release.pathWithoutNode)).toBe(false);
    const version = await runReleased(['--version']);
    expect(version).toMatchObject({ code: 0, stderr: '' });
    expect(version.stdout).toMatch(
      new RegExp(`^cri-proxy ${packageVersion().replace(/\./g, '\\.')} \\(commit [0-9a-f]{12}(\\+dirty)?\\)\\n$`),
    );
    const info = JSON.parse(readFileSync(join(release.dir, 'build-info.json'), 'utf8')) as { commit: string };
    expect(version.stdout).toContain(info.commit);

    expect(await runReleased(['config', 'validate', 'etc/cri-proxy/cri-proxy.yaml'])).toMatchObject({ code: 0 });
    const bad = join(release.dir, 'bad.yaml');
    writeFileSync(bad, 'backends:\n  - name: a\n    endpont: unix:///run/x.sock\n');
    const refused = await runReleased(['config', 'validate', bad]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/backends\[0\]/);
    // The policy example, tried with the executable's own image policy.
    const withPolicy = join(release.dir, 'with-policy.yaml');
    writeFileSync(
      withPolicy,
      'backends: [{ name: a, endpoint: "unix:///run/x.sock" }]\n' +
        'interceptors: [{ name: images, type: image-policy, config: { rulesFile: etc/cri-proxy/policies/image-policy-rules.yaml } }]\n',
    );
    const check = await runReleased(['policy', 'check', '--config', withPolicy, 'busybox', 'registry.k8s.io/pause:3.9']);
    expect(
      check.stdout
        .trim()
        .split('\n')
        .map((line) => line.split(' ').slice(0, 2).join(' ')),
    ).toEqual(['deny docker.io/library/busybox:latest', 'allow registry.k8s.io/pause:3.9']);
  });
});

describe('the released executable in front of a real containerd', () => {
  let env: E2eEnvironment;
  let receiver: OtlpReceiver;
  let grpcReceiver: OtlpGrpcReceiver;
  let cri: CriClient | undefined;
  let activation: SocketActivation | undefined;

  beforeAll(async () => {
    env = await startEnvironment();
    receiver = await startOtlpReceiver();
    grpcReceiver = await startOtlpGrpcReceiver();
  });
  afterAll(async () => {
    cri?.close();
    await activation?.close();
    await env?.stop();
    await receiver?.close();
    await grpcReceiver?.close();
  });

  test('verifies image signatures with the sigstore libraries it bundles', async () => {
    // A keyless bundle from a mock sigstore and a key signature, on images in the run's registry.
    const registry = new OciRegistry(env.registryHost);
    const sigstore = await MockSigstore.start();
    try {
      const identity = { issuer: 'https://token.ci.example', subject: 'https://git.example/corp/app/release.yml@refs/tags/v1' };
      const keyless = await registry.pushImage('release/keyless', '1', 'keyless');
      await attachBundle(registry, 'release/keyless', keyless, await sigstore.bundle(signatureStatement(keyless.digest), identity));
      const key = generateKey('ed25519');
      const keyed = await registry.pushImage('release/keyed', '1', 'keyed');
      await cosignSignWithKey(registry, 'release/keyed', keyed.digest, key);
      const root = join(env.workDir, 'trusted_root.json');
      const keyFile = join(env.workDir, 'release.pub');
      writeFileSync(root, JSON.stringify(sigstore.trustedRoot));
      writeFileSync(keyFile, key.publicPem);
      const viaRoot = ['policy', 'verify', '--plain-http', '--trusted-root', root, '--certificate-oidc-issuer', identity.issuer];
      const bundle = await runReleased([...viaRoot, '--certificate-identity', identity.subject, `${env.registryHost}/release/keyless:1`]);
      expect(bundle).toMatchObject({ code: 0, stderr: '' });
      expect(bundle.stdout).toContain(`signed by ${identity.subject}`);
      const cosign = await runReleased(['policy', 'verify', '--plain-http', '--key', keyFile, `${env.registryHost}/release/keyed:1`]);
      expect(cosign).toMatchObject({ code: 0, stderr: '' });
      const other = await runReleased([...viaRoot, '--certificate-identity', 'someone-else', `${env.registryHost}/release/keyless:1`]);
      expect(other.code).toBe(1);
      expect(other.stdout).toContain('identity-mismatch');
    } finally {
      await sigstore.close();
    }
  });

  function writeConfig(name: string, socketPath: string): string {
    const configPath = join(env.workDir, `${name}.yaml`);
    writeFileSync(
      configPath,
      [
        `listen: unix://${socketPath}`,
        'http:',
        '  listen: ""',
        'podStarts: { settleMs: 500 }',
        'backends:',
        '  - name: containerd',
        `    endpoint: unix://${env.containerdSocket}`,
        // Each interceptor type, so that what each loads (the tracing SDK and exporter lazily) is in the bundle.
        'interceptors:',
        '  - name: tracing',
        '    type: tracing',
        '    onError: failOpen',
        '    config:',
        `      exporter: { type: otlp-http, endpoint: "${receiver.url}" }`,
        '  - name: tracing-grpc',
        '    type: tracing',
        '    onError: failOpen',
        '    config:',
        `      exporter: { type: otlp-grpc, endpoint: "${grpcReceiver.url}" }`,
        '      podStart: { enabled: false }',
        '  - name: metrics',
        '    type: metrics',
        '    onError: failOpen',
        '  - name: audit',
        '    type: audit',
        `    config: { path: ${join(env.workDir, 'audit', 'audit.log')} }`,
        '  - name: images',
        '    type: image-policy',
        `    config: { rules: [{ name: local, match: { images: ["${env.registryHost}/**"] }, action: allow }], defaultAction: deny }`,
      ].join('\n'),
    );
    return configPath;
  }

  test('a pod runs through it', async () => {
    const socketPath = env.socketPath('released');
    const configPath = writeConfig('released', socketPath);
    await env.startProcess('released', release.executable, ['--config', configPath], {
      env: { PATH: release.pathWithoutNode },
      cwd: release.dir,
      waitForSocket: socketPath,
    });
    cri = createCriClient(socketPath);
    expect(stringField(await cri.call('Version', { version: 'v1' }), 'runtime_name')).toBe('containerd');
    const config = {
      metadata: { name: 'released', namespace: 'e2e', uid: 'released-uid', attempt: 0 },
      log_directory: join(env.podLogDir, 'released'),
      linux: {},
    };
    const podId = stringField(await cri.call('RunPodSandbox', { config }), 'pod_sandbox_id');
    await cri.call('PullImage', { image: { image: env.busyboxImage }, sandbox_config: config });
    const created = await cri.call('CreateContainer', {
      pod_sandbox_id: podId,
      sandbox_config: config,
      config: { metadata: { name: 'main' }, image: { image: env.busyboxImage }, command: ['sleep', '3600'], log_path: 'main.log' },
    });
    const containerId = stringField(created, 'container_id');
    await cri.call('StartContainer', { container_id: containerId });
    expect(stringField(await cri.call('ContainerStatus', { container_id: containerId }), 'status.state')).toBe('CONTAINER_RUNNING');
    const exec = await cri.call('ExecSync', { container_id: containerId, cmd: ['echo', 'from the release'], timeout: 10 });
    expect(numberField(exec, 'exit_code')).toBe(0);
    // The image policy's refusal, built by the proxy itself.
    await expect(cri.call('PullImage', { image: { image: 'docker.io/library/nginx:1' } })).rejects.toMatchObject({ code: 7 });
    await waitUntil(
      'the pod-start trace to reach the collector',
      () => Promise.resolve(receiver.spans.some((s) => s.name === 'pod start')),
      {
        timeoutMs: 30_000,
      },
    );
    // The other exporter, over gRPC, loads from the bundle too; its batch goes out within seconds.
    await waitUntil('a span export over OTLP/gRPC', () => Promise.resolve(grpcReceiver.exports() > 0), { timeoutMs: 30_000 });
    const auditLog = readFileSync(join(env.workDir, 'audit', 'audit.log'), 'utf8');
    expect(auditLog).toContain(podId);

    await cri.call('StopPodSandbox', { pod_sandbox_id: podId });
    await cri.call('RemovePodSandbox', { pod_sandbox_id: podId });
    expect(listField(await cri.call('ListPodSandbox', {}), 'items')).toEqual([]);
  });

  test('on a socket passed in, a restart fails none of the calls made across it', async () => {
    const socketPath = env.socketPath('activated');
    const configPath = writeConfig('activated', env.socketPath('unused'));
    const parent = await SocketActivation.create(
      socketPath,
      join(env.logDir, 'activated.log'),
      'cri-proxy',
      release.executable,
      ['--config', configPath],
      {
        PATH: release.pathWithoutNode,
      },
    );
    activation = parent;
    const first = await parent.start();
    await waitForUnixSocket(socketPath);
    const client = createCriClient(socketPath);
    try {
      expect(listField(await client.call('ListPodSandbox', {}), 'items')).toEqual([]);
      parent.signal('SIGTERM');
      expect(await parent.exited(first)).toMatchObject({ code: 0 });
      // Made while nothing serves the socket: it waits for the next process.
      const waiting = client.call('Version', { version: 'v1' }, { timeoutMs: 60_000 });
      await parent.start();
      expect(stringField(await waiting, 'runtime_name')).toBe('containerd');
    } finally {
      client.close();
    }
  });
});

describe('the npm package', () => {
  test('npm install -g of the packed tarball puts cri-proxy on the PATH', async () => {
    const prefix = mkdtempSync(join(tmpdir(), 'cri-proxy-npm-'));
    try {
      await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', npmPackage(release.tarball)], {
        timeoutMs: 300_000,
      });
      const bin = join(prefix, 'bin');
      const { stdout } = await run('cri-proxy', ['--version'], { env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` } });
      expect(stdout).toMatch(new RegExp(`^cri-proxy ${packageVersion().replace(/\./g, '\\.')} \\(commit [0-9a-f]{12}`));
      const validated = await run('cri-proxy', ['config', 'validate', join(ROOT, 'config', 'node.yaml')], {
        env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` },
      });
      expect(validated.stdout).toMatch(/valid/);
    } finally {
      rmSync(prefix, { recursive: true, force: true });
    }
  });
});
