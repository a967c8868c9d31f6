/**
 * What operators install: the Kubernetes manifests (validated against the Kubernetes schemas, as kustomize
 * would assemble them), the scripts they and the release run (shellcheck, from Debian), and the systemd
 * units (systemd-analyze).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { builtinTypes } from '../../src/commands/builtin-types';
import { parseConfig } from '../../src/config/load';

const ROOT = resolve(__dirname, '../..');
const K8S = join(ROOT, 'deploy', 'kubernetes');

type Manifest = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } } & Record<string, unknown>;

interface Kustomization {
  resources: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
  configMapGenerator?: { name: string; namespace?: string; files?: string[]; literals?: string[] }[];
}

/** Each kind the manifests use, with its schema; a new kind must be added here to be validated. */
const models: Record<string, (data: Manifest) => { validate(): void }> = {
  'v1/Namespace': (d) => new Namespace(d),
  'v1/ServiceAccount': (d) => new ServiceAccount(d),
  'v1/ConfigMap': (d) => new ConfigMap(d),
  'apps/v1/DaemonSet': (d) => new DaemonSet(d),
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

function readManifests(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as Manifest;
  });
}

const kustomization = parseYaml(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as Kustomization;

/** What `kustomize build` yields, minus name hashes and image rewrites: the resources and the generated ConfigMaps. */
function assemble(): Manifest[] {
  const resources = kustomization.resources.flatMap((file) => readManifests(join(K8S, file)));
  const generated = (kustomization.configMapGenerator ?? []).map((gen): Manifest => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: gen.name, ...(gen.namespace ? { namespace: gen.namespace } : {}) },
    data: Object.fromEntries([
      ...(gen.files ?? []).map((f) => [basename(f), readFileSync(join(K8S, f), 'utf8')]),
      ...(gen.literals ?? []).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    ]),
  }));
  return [...resources, ...generated];
}

function daemonSet(): Manifest & { spec: { template: { spec: PodSpec } } } {
  const found = assemble().find((m) => m.kind === 'DaemonSet');
  if (!found) throw new Error('no DaemonSet');
  return found as Manifest & { spec: { template: { spec: PodSpec } } };
}

interface Container {
  name: string;
  image: string;
  command: string[];
  envFrom?: { configMapRef?: { name: string } }[];
  volumeMounts: { name: string; mountPath: string }[];
}
interface PodSpec {
  hostPID?: boolean;
  initContainers: Container[];
  containers: Container[];
  volumes: { name: string; configMap?: { name: string }; hostPath?: { path: string } }[];
}

describe('Kubernetes manifests', () => {
  test('every manifest, generated ConfigMaps included, is valid against the Kubernetes schemas', () => {
    const manifests = assemble();
    expect(manifests.length).toBeGreaterThan(0);
    for (const manifest of manifests) {
      const model = models[`${manifest.apiVersion ?? ''}/${manifest.kind ?? ''}`];
      if (!model) throw new Error(`${manifest.apiVersion}/${manifest.kind} ${manifest.metadata?.name}: no schema listed in this test`);
      expect(() => model(manifest).validate()).not.toThrow();
      expect(manifest.kind === 'Namespace' || manifest.metadata?.namespace === 'cri-proxy-system').toBe(true);
    }
  });

  test('the schema check catches a broken manifest', () => {
    const broken = structuredClone(daemonSet());
    const first = broken.spec.template.spec.containers[0] as (Container & { securityContext?: unknown }) | undefined;
    if (first) first.securityContext = { privileged: 'yes' };
    expect(() => models['apps/v1/DaemonSet']?.(broken).validate()).toThrow(/privileged/);
  });

  test('kustomization.yaml lists every file of the folder, and every file it lists exists', () => {
    const listed = new Set([
      'kustomization.yaml',
      'installer/Dockerfile',
      ...kustomization.resources,
      ...(kustomization.configMapGenerator ?? []).flatMap((g) => g.files ?? []),
    ]);
    const present = filesUnder(K8S).map((f) => relative(K8S, f));
    expect(present.sort()).toEqual([...listed].sort());
  });

  test('the DaemonSet only installs: its containers run the installer scripts, referencing what exists', () => {
    const ds = daemonSet();
    const pod = ds.spec.template.spec;
    const configMaps = new Set(
      assemble()
        .filter((m) => m.kind === 'ConfigMap')
        .map((m) => m.metadata?.name),
    );
    const scripts = new Set((kustomization.configMapGenerator ?? []).flatMap((g) => (g.files ?? []).map((f) => basename(f))));
    const images = new Set((kustomization.images ?? []).map((i) => i.name));
    expect(pod.hostPID).toBe(true);
    for (const volume of pod.volumes) if (volume.configMap) expect(configMaps).toContain(volume.configMap.name);
    const containers = [...pod.initContainers, ...pod.containers];
    expect(containers.map((c) => c.command)).toEqual([
      ['/bin/bash', '/scripts/install-node.sh'],
      ['/bin/bash', '/scripts/sync.sh'],
    ]);
    for (const container of containers) {
      // cri-proxy itself never runs in a pod: it is the host's systemd service.
      for (const script of container.command.slice(1)) expect(scripts).toContain(basename(script));
      expect(images).toContain(container.image.split(':')[0]);
      for (const ref of container.envFrom ?? []) expect(configMaps).toContain(ref.configMapRef?.name);
      for (const mount of container.volumeMounts) expect(pod.volumes.map((v) => v.name)).toContain(mount.name);
    }
  });

  test("the ConfigMaps hold the release's example config, which validates, and the policy example", () => {
    const maps = assemble().filter((m) => m.kind === 'ConfigMap') as (Manifest & { data: Record<string, string> })[];
    const config = maps.find((m) => m.metadata?.name === 'cri-proxy-config')?.data['cri-proxy.yaml'];
    expect(config).toBe(readFileSync(join(ROOT, 'deploy', 'systemd', 'cri-proxy.yaml'), 'utf8'));
    expect(() => parseConfig(config ?? '', 'cri-proxy-config', builtinTypes())).not.toThrow();
    const policy = maps.find((m) => m.metadata?.name === 'cri-proxy-policy')?.data['image-policy-rules.yaml'];
    expect(policy).toBe(readFileSync(join(ROOT, 'config', 'policies', 'image-policy-rules.yaml'), 'utf8'));
  });
});

/** Runs a Debian tool; a missing one fails with how to install it. */
function tool(command: string, args: readonly string[], cwd = ROOT): { status: number | null; output: string } {
  const result = spawnSync(command, [...args], { cwd, encoding: 'utf8' });
  if (result.error) throw new Error(`${command}: ${result.error.message} (install it: bash scripts/install-e2e-deps.sh)`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('scripts', () => {
  const scripts = [
    ...filesUnder(join(K8S, 'scripts')),
    join(ROOT, 'deploy', 'systemd', 'install.sh'),
    ...readdirSync(join(ROOT, 'scripts'))
      .filter((f) => f.endsWith('.sh'))
      .map((f) => join(ROOT, 'scripts', f)),
  ].map((f) => relative(ROOT, f));

  test('shellcheck finds nothing in the scripts the DaemonSet and the release run, nor in scripts/', () => {
    expect(scripts).toEqual(
      expect.arrayContaining(['deploy/kubernetes/scripts/install-node.sh', 'deploy/systemd/install.sh', 'scripts/release.sh']),
    );
    const result = tool('shellcheck', ['--external-sources', ...scripts]);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });
});

describe('systemd units', () => {
  let dir: string;
  beforeAll(() => {
    // systemd-analyze checks that ExecStart's program exists: point it at one that does.
    dir = mkdtempSync(join(tmpdir(), 'cri-proxy-units-'));
    for (const unit of ['cri-proxy.service', 'cri-proxy.socket']) {
      const text = readFileSync(join(ROOT, 'deploy', 'systemd', unit), 'utf8');
      writeFileSync(join(dir, unit), text.replaceAll('/usr/local/bin/cri-proxy', process.execPath));
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('systemd-analyze verify finds nothing to say about them', () => {
    const result = tool('systemd-analyze', ['verify', '--man=no', './cri-proxy.socket', './cri-proxy.service'], dir);
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  test('the verification catches an unknown setting', () => {
    const broken = join(dir, 'broken.service');
    copyFileSync(join(dir, 'cri-proxy.service'), broken);
    writeFileSync(broken, readFileSync(broken, 'utf8').replace('[Service]', '[Service]\nRestartt=always'));
    expect(tool('systemd-analyze', ['verify', '--man=no', './broken.service'], dir).output).toMatch(/Restartt/);
  });

  test('the service is hardened: systemd-analyze security rates its exposure at most 3.0 ("OK")', () => {
    // --threshold is in tenths.
    const result = tool('systemd-analyze', ['security', '--offline=yes', '--threshold=30', './cri-proxy.service'], dir);
    expect(result.output).toMatch(/Overall exposure level for cri-proxy\.service: \d\.\d (OK|SAFE)/);
    expect(result.status).toBe(0);
  });

  test('the service takes its socket from cri-proxy.socket and notifies readiness', () => {
    const unit = readFileSync(join(ROOT, 'deploy', 'systemd', 'cri-proxy.service'), 'utf8');
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^NotifyAccess=all$/m);
    expect(unit).toMatch(/^Requires=cri-proxy\.socket$/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^After=.*\bcontainerd\.service\b.*\bcrio\.service\b/m);
    expect(unit).toMatch(/^Before=kubelet\.service$/m);
    const socket = readFileSync(join(ROOT, 'deploy', 'systemd', 'cri-proxy.socket'), 'utf8');
    expect(socket).toMatch(/^ListenStream=\/run\/cri-proxy\/cri-proxy\.sock$/m);
    expect(socket).toMatch(/^FileDescriptorName=cri-proxy$/m);
  });
});
