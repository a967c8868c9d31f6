/**
 * Safe by default: a socket mode or listen directory that lets other users drive the runtime is refused (by
 * `config validate`, with the key's path, and at start) unless `allowInsecureSocket: true`, which is then
 * warned about and shown in `cri_proxy_insecure_settings`; so is a metrics listener that is not loopback.
 */
import { chmodSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import { builtinTypes } from '../../src/commands/builtin-types';
import { validateConfig } from '../../src/commands/config';
import { ExitCode } from '../../src/commands/exit-codes';
import { SocketMode } from '../../src/config/address';
import { validateProxyConfig, type ProxyConfig } from '../../src/config/schema';
import { createLogger, silentLogger } from '../../src/log';
import { makeTempDir } from '../support/proxy-harness';

let dir: string;
let app: App | undefined;
beforeEach(() => {
  dir = makeTempDir('cri-proxy-socket-safety-');
});
afterEach(async () => {
  await app?.stop(0);
  app = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function configFile(lines: readonly string[], socketDir = join(dir, 'run')): string {
  const file = join(dir, 'cri-proxy.yaml');
  writeFileSync(
    file,
    [
      `listen: unix://${join(socketDir, 'cri.sock')}`,
      'http: { listen: "" }',
      'backends: [{ name: containerd, endpoint: /nonexistent/containerd.sock }]',
      ...lines,
      '',
    ].join('\n'),
  );
  return file;
}

function validate(file: string): { code: number; err: string } {
  let err = '';
  const code = validateConfig(file, { out: () => undefined, err: (t) => (err += t) });
  return { code, err };
}

function config(fields: Record<string, unknown>): ProxyConfig {
  const result = validateProxyConfig(
    {
      listen: `unix://${join(dir, 'run', 'cri.sock')}`,
      http: { listen: '' },
      shutdownGraceSeconds: 0,
      backends: [{ name: 'containerd', endpoint: '/nonexistent/containerd.sock' }],
      ...fields,
    },
    builtinTypes(),
  );
  if (!result.ok) throw new Error(JSON.stringify(result.issues));
  return result.config;
}

async function insecure(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('cri_proxy_insecure_settings')?.get();
  return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.setting), v.value]));
}

describe('socketMode', () => {
  test.each(['0666', '0662', '0777', '002'])('%s (writable by every user) is a config error at socketMode', (mode) => {
    const result = validate(configFile([`socketMode: "${mode}"`]));
    expect(result.code).toBe(ExitCode.CHECK_FAILED);
    expect(result.err).toMatch(/: socketMode: ".*" lets every user on the node write to the CRI socket.* \(line 4, column 1\)$/m);
  });

  test.each(['0660', '0600', '0664', '0640'])('%s is accepted', (mode) => {
    expect(validate(configFile([`socketMode: "${mode}"`])).code).toBe(ExitCode.OK);
  });

  test('allowInsecureSocket: true accepts 0666; the proxy starts with it, warns and says so in a gauge', async () => {
    expect(validate(configFile(['socketMode: "0666"', 'allowInsecureSocket: true'])).code).toBe(ExitCode.OK);
    const registry = new Registry();
    const logged: string[] = [];
    app = await App.start(config({ socketMode: '0666', allowInsecureSocket: true }), {
      log: createLogger('warn', (l) => logged.push(l)),
      registry,
    });
    expect(statSync(app.socketPath).mode & 0o777).toBe(0o666);
    expect(await insecure(registry)).toEqual({ socketMode: 1, listen: 0, 'http.listen': 0 });
    const warnings = logged.map((l) => JSON.parse(l) as { level: string; setting?: string }).filter((r) => r.level === 'warn');
    expect(warnings.map((w) => w.setting)).toEqual(['socketMode']);
  });

  test('a config built without validation is still refused at start', async () => {
    // validateProxyConfig refuses it too; App.start must not rely on that.
    const unchecked: ProxyConfig = { ...config({}), socketMode: new SocketMode('0666') };
    await expect(App.start(unchecked, { log: silentLogger, registry: new Registry() })).rejects.toThrow(
      /^socketMode: "0666" lets every user/,
    );
  });
});

describe('the listen directory', () => {
  test('an existing one writable by every user is a config error at listen, and refused at start', async () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o1777);
    const result = validate(configFile([], open));
    expect(result.code).toBe(ExitCode.CHECK_FAILED);
    expect(result.err).toMatch(new RegExp(`: listen: ${open} is writable by every user \\(mode "1777"\\).* \\(line 1, column 1\\)$`, 'm'));
    await expect(
      App.start(config({ listen: `unix://${join(open, 'cri.sock')}` }), { log: silentLogger, registry: new Registry() }),
    ).rejects.toThrow(/^listen: .* is writable by every user/);
  });

  test("group-writable for a group that could not write the socket is refused; for the socket's own group it is not", () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o770);
    // The directory's group is this process's: members may already write the socket (0660)…
    expect(validate(configFile([], shared)).code).toBe(ExitCode.OK);
    // …but not with 0600, so they must not be able to replace it either.
    const refused = validate(configFile(['socketMode: "0600"'], shared));
    expect(refused.code).toBe(ExitCode.CHECK_FAILED);
    expect(refused.err).toContain(`${shared} is writable by group`);
  });

  test('a sticky directory above (as /tmp) is fine; allowInsecureSocket accepts an open one, warned and counted', async () => {
    const sticky = join(dir, 'sticky');
    mkdirSync(join(sticky, 'mine'), { recursive: true });
    chmodSync(sticky, 0o1777);
    chmodSync(join(sticky, 'mine'), 0o750);
    expect(validate(configFile([], join(sticky, 'mine'))).code).toBe(ExitCode.OK);
    expect(validate(configFile(['allowInsecureSocket: true'], sticky)).code).toBe(ExitCode.OK);
    const registry = new Registry();
    app = await App.start(config({ listen: `unix://${join(sticky, 'cri.sock')}`, allowInsecureSocket: true }), {
      log: silentLogger,
      registry,
    });
    expect(await insecure(registry)).toEqual({ socketMode: 0, listen: 1, 'http.listen': 0 });
  });
});

test('http.listen not on loopback is warned about and shown in the gauge; loopback is not', async () => {
  const registry = new Registry();
  const logged: string[] = [];
  app = await App.start(config({ http: { listen: '0.0.0.0:0' } }), { log: createLogger('warn', (l) => logged.push(l)), registry });
  expect(await insecure(registry)).toEqual({ socketMode: 0, listen: 0, 'http.listen': 1 });
  expect(logged.map((l) => (JSON.parse(l) as { setting?: string }).setting)).toEqual(['http.listen']);
  await app.stop(0);
  const loopback = new Registry();
  app = await App.start(config({ http: { listen: '127.0.0.1:0' } }), { log: silentLogger, registry: loopback });
  expect(await insecure(loopback)).toEqual({ socketMode: 0, listen: 0, 'http.listen': 0 });
});
