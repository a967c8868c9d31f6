/**
 * The node installer scripts (the release's install.sh, the DaemonSet's scripts) against a fake host: a
 * folder as its root, and stand-ins for systemctl (via nsenter) and for the release's executable that record
 * what they are asked.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '../support/proxy-harness';
import { waitFor } from '../support/wait';

const ROOT = path.resolve(__dirname, '../..');

interface FakeHost {
  readonly dir: string;
  readonly root: string;
  readonly release: string;
  readonly env: NodeJS.ProcessEnv;
  /** The systemctl commands run, one line each. */
  systemctl(): string[];
  setActive(active: boolean): void;
}

function write(file: string, text: string, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode });
}

/** A release folder laid out as release.sh lays it, with an executable that only answers --version and validate. */
function fakeRelease(dir: string, version: string): void {
  write(
    path.join(dir, 'cri-proxy'),
    [
      '#!/bin/sh',
      `[ "$1" = --version ] && { echo "cri-proxy ${version} (commit fake)"; exit 0; }`,
      '[ "$1 $2" = "config validate" ] || exit 2',
      'if grep -q "refuse me" "$3"; then echo "$3: refused" >&2; exit 1; fi',
      'echo "$3: valid"',
    ].join('\n'),
    0o755,
  );
  const files: Record<string, string> = {
    'install.sh': 'deploy/systemd/install.sh',
    INSTALL: 'deploy/systemd/INSTALL',
    'doc/operations.md': 'docs/operations.md',
    'systemd/cri-proxy.service': 'deploy/systemd/cri-proxy.service',
    'systemd/cri-proxy.socket': 'deploy/systemd/cri-proxy.socket',
    'etc/cri-proxy/cri-proxy.yaml': 'deploy/systemd/cri-proxy.yaml',
    'etc/cri-proxy/policies/image-policy-rules.yaml': 'config/policies/image-policy-rules.yaml',
  };
  for (const [to, from] of Object.entries(files)) {
    write(path.join(dir, to), fs.readFileSync(path.join(ROOT, from), 'utf8'), to.endsWith('.sh') ? 0o755 : 0o644);
  }
}

function fakeHost(): FakeHost {
  const dir = makeTempDir('cri-proxy-node-');
  const root = path.join(dir, 'host');
  const bin = path.join(dir, 'bin');
  const record = path.join(dir, 'systemctl.log');
  const active = path.join(dir, 'active');
  fs.mkdirSync(root);
  // nsenter ... -- systemctl ARGS: recorded; is-active answers from a flag file.
  write(path.join(bin, 'nsenter'), ['#!/bin/sh', 'while [ "$1" != "--" ]; do shift; done; shift', `"$@" ; exit $?`].join('\n'), 0o755);
  write(
    path.join(bin, 'systemctl'),
    ['#!/bin/sh', `echo "$*" >> "${record}"`, `if [ "$1" = is-active ]; then [ -e "${active}" ]; exit $?; fi`, 'exit 0'].join('\n'),
    0o755,
  );
  const release = path.join(dir, 'release');
  fakeRelease(release, '1.0.0');
  return {
    dir,
    root,
    release,
    env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` },
    systemctl: () => (fs.existsSync(record) ? fs.readFileSync(record, 'utf8').trim().split('\n') : []),
    setActive: (on) => (on ? fs.writeFileSync(active, '') : fs.rmSync(active, { force: true })),
  };
}

function runScript(
  host: FakeHost,
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): { status: number | null; output: string } {
  const result = spawnSync('bash', [script, ...args], { env: { ...host.env, ...env }, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('install.sh from the release', () => {
  let host: FakeHost;
  beforeEach(() => (host = fakeHost()));
  afterEach(() => fs.rmSync(host.dir, { recursive: true, force: true }));

  const install = (): { status: number | null; output: string } =>
    runScript(host, path.join(host.release, 'install.sh'), ['--root', host.root, '--systemctl', 'systemctl']);
  const installed = (p: string): string => fs.readFileSync(path.join(host.root, p), 'utf8');

  test('a first install puts everything in place, enables and starts both units', () => {
    expect(install()).toMatchObject({ status: 0 });
    expect(installed('usr/local/bin/cri-proxy')).toContain('1.0.0');
    expect(fs.statSync(path.join(host.root, 'usr/local/bin/cri-proxy')).mode & 0o777).toBe(0o755);
    expect(installed('etc/systemd/system/cri-proxy.service')).toBe(
      fs.readFileSync(path.join(ROOT, 'deploy/systemd/cri-proxy.service'), 'utf8'),
    );
    expect(installed('etc/cri-proxy/cri-proxy.yaml')).toBe(fs.readFileSync(path.join(ROOT, 'deploy/systemd/cri-proxy.yaml'), 'utf8'));
    expect(fs.existsSync(path.join(host.root, 'etc/cri-proxy/policies/image-policy-rules.yaml'))).toBe(true);
    expect(fs.existsSync(path.join(host.root, 'usr/local/share/doc/cri-proxy/operations.md'))).toBe(true);
    expect(host.systemctl()).toEqual([
      'daemon-reload',
      'enable cri-proxy.socket cri-proxy.service',
      'start cri-proxy.socket',
      'is-active --quiet cri-proxy.service',
      'start cri-proxy.service',
      'is-active cri-proxy.service',
    ]);
  });

  test('an upgrade keeps the config in place and restarts the running service on its socket', () => {
    expect(install().status).toBe(0);
    fs.appendFileSync(path.join(host.root, 'etc/cri-proxy/cri-proxy.yaml'), '# edited on the node\n');
    host.setActive(true);
    fakeRelease(host.release, '1.1.0');
    fs.rmSync(path.join(host.dir, 'systemctl.log'));
    const upgrade = install();
    expect(upgrade.status).toBe(0);
    expect(installed('usr/local/bin/cri-proxy')).toContain('1.1.0');
    expect(installed('etc/cri-proxy/cri-proxy.yaml')).toMatch(/# edited on the node\n$/);
    expect(host.systemctl()).toContain('restart cri-proxy.service');
    expect(host.systemctl()).not.toContain('restart cri-proxy.socket');
  });

  test('nothing changed: nothing restarts', () => {
    expect(install().status).toBe(0);
    host.setActive(true);
    fs.rmSync(path.join(host.dir, 'systemctl.log'));
    expect(install().status).toBe(0);
    expect(host.systemctl().filter((c) => c.startsWith('restart'))).toEqual([]);
  });

  test('a config the new executable refuses stops the upgrade before anything is replaced', () => {
    expect(install().status).toBe(0);
    fs.appendFileSync(path.join(host.root, 'etc/cri-proxy/cri-proxy.yaml'), '# refuse me\n');
    fakeRelease(host.release, '2.0.0');
    const refused = install();
    expect(refused.status).toBe(1);
    expect(refused.output).toMatch(/does not validate with cri-proxy 2\.0\.0/);
    expect(installed('usr/local/bin/cri-proxy')).toContain('1.0.0');
  });
});

describe('the DaemonSet scripts', () => {
  let host: FakeHost;
  let staged: string;
  let env: NodeJS.ProcessEnv;
  const scripts = path.join(ROOT, 'deploy/kubernetes/scripts');

  beforeEach(() => {
    host = fakeHost();
    staged = path.join(host.dir, 'staged');
    write(path.join(staged, 'config/cri-proxy.yaml'), fs.readFileSync(path.join(ROOT, 'deploy/systemd/cri-proxy.yaml'), 'utf8'));
    write(path.join(staged, 'policies/image-policy-rules.yaml'), 'mode: audit\nrules: []\n');
    env = {
      HOST_ROOT: host.root,
      RELEASE_DIR: host.release,
      STAGED_CONFIG: path.join(staged, 'config'),
      STAGED_POLICIES: path.join(staged, 'policies'),
    };
  });
  afterEach(() => fs.rmSync(host.dir, { recursive: true, force: true }));

  const kubeletConfig = (): string => path.join(host.root, 'var/lib/kubelet/config.yaml');
  const kubeletFlags = (): string => path.join(host.root, 'var/lib/kubelet/kubeadm-flags.env');

  test("install-node installs the release with the ConfigMaps' files and leaves kubelet alone by default", () => {
    write(kubeletConfig(), 'kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n');
    const result = runScript(host, path.join(scripts, 'install-node.sh'), [], env);
    expect(result).toMatchObject({ status: 0 });
    expect(fs.readFileSync(path.join(host.root, 'etc/cri-proxy/policies/image-policy-rules.yaml'), 'utf8')).toBe(
      'mode: audit\nrules: []\n',
    );
    expect(fs.existsSync(path.join(host.root, 'usr/local/bin/cri-proxy'))).toBe(true);
    expect(host.systemctl()).toContain('enable cri-proxy.socket cri-proxy.service');
    expect(fs.readFileSync(kubeletConfig(), 'utf8')).toContain('containerd.sock');
    expect(host.systemctl().filter((c) => c.includes('kubelet'))).toEqual([]);
  });

  test('install-node refuses a config ConfigMap the release does not accept, changing nothing', () => {
    fs.appendFileSync(path.join(staged, 'config/cri-proxy.yaml'), '# refuse me\n');
    const result = runScript(host, path.join(scripts, 'install-node.sh'), [], env);
    expect(result.status).toBe(1);
    expect(fs.existsSync(path.join(host.root, 'etc/cri-proxy/cri-proxy.yaml'))).toBe(false);
    expect(fs.existsSync(path.join(host.root, 'usr/local/bin/cri-proxy'))).toBe(false);
  });

  test("point-kubelet points the config file and kubeadm's flags at the proxy once it is active, then back", () => {
    write(
      kubeletConfig(),
      'apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n',
    );
    write(
      kubeletFlags(),
      'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=pause"\n',
    );
    const point = (on: boolean): { status: number | null; output: string } =>
      runScript(host, path.join(scripts, 'point-kubelet.sh'), [], { ...env, POINT_KUBELET: String(on) });

    expect(point(true).status).toBe(1);
    expect(host.systemctl().filter((c) => c.includes('kubelet'))).toEqual([]);

    host.setActive(true);
    expect(point(true)).toMatchObject({ status: 0 });
    const proxy = 'unix:///run/cri-proxy/cri-proxy.sock';
    expect(fs.readFileSync(kubeletConfig(), 'utf8')).toBe(
      `apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: ${proxy}\nimageServiceEndpoint: ${proxy}\n`,
    );
    expect(fs.readFileSync(kubeletFlags(), 'utf8')).toBe(
      `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=${proxy} --pod-infra-container-image=pause"\n`,
    );
    expect(host.systemctl().filter((c) => c === 'restart kubelet.service')).toHaveLength(1);

    // Already pointed: no second restart.
    expect(point(true).status).toBe(0);
    expect(host.systemctl().filter((c) => c === 'restart kubelet.service')).toHaveLength(1);

    expect(point(false).status).toBe(0);
    expect(fs.readFileSync(kubeletConfig(), 'utf8')).toContain('containerRuntimeEndpoint: unix:///run/containerd/containerd.sock');
    expect(fs.readFileSync(kubeletFlags(), 'utf8')).toContain('--container-runtime-endpoint=unix:///run/containerd/containerd.sock');
    expect(host.systemctl().filter((c) => c === 'restart kubelet.service')).toHaveLength(2);
    // Pointed back once; later runs with false leave kubelet alone.
    expect(point(false).status).toBe(0);
    expect(host.systemctl().filter((c) => c === 'restart kubelet.service')).toHaveLength(2);
  });

  test('point-kubelet leaves a JSON kubelet config to the operator', () => {
    write(kubeletConfig(), '{"kind":"KubeletConfiguration"}\n');
    host.setActive(true);
    const result = runScript(host, path.join(scripts, 'point-kubelet.sh'), [], { ...env, POINT_KUBELET: 'true' });
    expect(result.status).toBe(1);
    expect(result.output).toMatch(/is JSON/);
    expect(fs.readFileSync(kubeletConfig(), 'utf8')).toBe('{"kind":"KubeletConfiguration"}\n');
  });

  test('sync copies a changed policy file and applies a changed config with a reload', async () => {
    expect(runScript(host, path.join(scripts, 'install-node.sh'), [], env).status).toBe(0);
    fs.rmSync(path.join(host.dir, 'systemctl.log'));
    write(path.join(staged, 'policies/image-policy-rules.yaml'), 'mode: enforce\nrules: []\n');
    fs.appendFileSync(path.join(staged, 'config/cri-proxy.yaml'), '# changed in the ConfigMap\n');
    const sync = spawn('bash', [path.join(scripts, 'sync.sh')], { env: { ...host.env, ...env, SYNC_INTERVAL: '3600' }, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => sync.once('exit', (code) => resolve(code)));
    try {
      await waitFor(() => host.systemctl().includes('reload cri-proxy.service'), 20_000);
      expect(fs.readFileSync(path.join(host.root, 'etc/cri-proxy/policies/image-policy-rules.yaml'), 'utf8')).toBe(
        'mode: enforce\nrules: []\n',
      );
      expect(fs.readFileSync(path.join(host.root, 'etc/cri-proxy/cri-proxy.yaml'), 'utf8')).toMatch(/# changed in the ConfigMap\n$/);
    } finally {
      sync.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
