/** `cri-proxy policy verify` and `policy check` against a real registry holding images the test signed. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { main } from '../../src/cli';
import type { Registry } from '../e2e/harness/registry';
import type { OciRegistry } from '../support/oci-registry';
import { startTestRegistry, stopTestRegistry } from '../support/test-registry';
import { attachBundle, cosignSignWithKey, generateKey, MockSigstore, signatureStatement, type SigningKey } from '../support/signing';

jest.setTimeout(120_000);

const IDENTITY = { issuer: 'https://token.ci.example', subject: 'https://git.example/corp/app/release.yml@refs/tags/v2' };

let dir: string;
let server: Registry;
let registry: OciRegistry;
let sigstore: MockSigstore;
let key: SigningKey;
let keyFile: string;
let rootFile: string;
let configFile: string;
let signed: string;
let unsigned: string;
let keyless: string;

type Words = readonly ['policy', 'verify'] | readonly ['policy', 'check'];
const runPolicyVerify: Words = ['policy', 'verify'];
const runPolicyCheck: Words = ['policy', 'check'];

async function run(command: Words, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main([...command, ...argv], { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

beforeAll(async () => {
  ({ dir, server, registry } = await startTestRegistry('cri-proxy-policy-verify-'));
  sigstore = await MockSigstore.start();
  key = generateKey('p384');
  keyFile = join(dir, 'release.pub');
  rootFile = join(dir, 'trusted_root.json');
  await writeFile(keyFile, key.publicPem);
  await writeFile(rootFile, JSON.stringify(sigstore.trustedRoot));
  const app = await registry.pushImage('prod/app', '1.0', 'app');
  await cosignSignWithKey(registry, 'prod/app', app.digest, key);
  await registry.pushImage('prod/tool', '1.0', 'tool');
  const ci = await registry.pushImage('ci/app', '2.0', 'ci');
  await attachBundle(registry, 'ci/app', ci, await sigstore.bundle(signatureStatement(ci.digest), IDENTITY));
  signed = `${server.host}/prod/app:1.0`;
  unsigned = `${server.host}/prod/tool:1.0`;
  keyless = `${server.host}/ci/app:2.0`;
  configFile = join(dir, 'cri-proxy.yaml');
  await writeFile(
    configFile,
    [
      'backends: [{ name: containerd, endpoint: /run/containerd/containerd.sock }]',
      'interceptors:',
      '  - name: images',
      '    type: image-policy',
      '    config:',
      `      stateDir: ${join(dir, 'state')}`,
      `      registries: { "${server.host}": { plainHttp: true } }`,
      '      rules:',
      `        - { name: prod-signed, match: { images: ["${server.host}/prod/**"] }, action: allow, verify: [{ keys: [release.pub] }] }`,
      `        - name: ci-keyless`,
      `          match: { images: ["${server.host}/ci/**"] }`,
      '          action: allow',
      `          verify: [{ keyless: { issuer: "${IDENTITY.issuer}", subjectRegExp: "^https://git\\\\.example/corp/", trustedRoot: trusted_root.json } }]`,
      `        - { name: public, match: { images: ["docker.io/**"] }, action: allow }`,
    ].join('\n'),
  );
});

afterAll(async () => {
  await sigstore?.close();
  await stopTestRegistry(server, dir);
});

describe('cri-proxy policy verify', () => {
  test('with keys from the command line: the signer and the digest, exit 0; unsigned, exit 1', async () => {
    const ok = await run(runPolicyVerify, '--plain-http', '--key', keyFile, signed);
    expect(ok).toMatchObject({ code: 0, err: '' });
    expect(ok.out).toMatch(
      new RegExp(`^verified ${server.host}/prod/app@sha256:[0-9a-f]{64}: signed by key sha256:[0-9a-f]{64} \\(cosign\\)\\n$`),
    );
    const no = await run(runPolicyVerify, '--plain-http', '--key', keyFile, unsigned);
    expect(no.code).toBe(1);
    expect(no.out).toMatch(/^not verified .*prod\/tool@sha256:[0-9a-f]{64}: no-signature: no signature found/);
  });

  test('with a certificate identity from the command line', async () => {
    const args = ['--plain-http', '--trusted-root', rootFile, '--certificate-oidc-issuer', IDENTITY.issuer];
    const ok = await run(runPolicyVerify, ...args, '--certificate-identity', IDENTITY.subject, keyless);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain(`signed by ${IDENTITY.subject} (issuer ${IDENTITY.issuer}) (bundle)`);
    const other = await run(runPolicyVerify, ...args, '--certificate-identity-regexp', '^https://git\\.example/other/', keyless);
    expect(other.code).toBe(1);
    expect(other.out).toContain('identity-mismatch');
  });

  test("with the proxy's config: the rule its image policy picks", async () => {
    const ok = await run(runPolicyVerify, '--config', configFile, keyless);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('(rule "ci-keyless"): signed by');
    const none = await run(runPolicyVerify, '--config', configFile, 'docker.io/library/busybox:1.36');
    expect(none).toMatchObject({
      code: 3,
      err: expect.stringMatching(/no image policy rule with "verify" allows docker.io\/library\/busybox:1.36/) as unknown,
    });
  });

  test('usage errors, unreadable keys and its own help', async () => {
    expect((await run(runPolicyVerify, signed)).code).toBe(2);
    expect((await run(runPolicyVerify, '--key', keyFile)).code).toBe(2);
    expect((await run(runPolicyVerify, '--key', keyFile, 'sha256:' + 'a'.repeat(64))).code).toBe(2);
    expect((await run(runPolicyVerify, '--trusted-root', rootFile, signed)).code).toBe(2);
    const missing = await run(runPolicyVerify, '--key', join(dir, 'nope.pub'), signed);
    expect(missing).toMatchObject({ code: 3, err: expect.stringMatching(/nope\.pub: .*ENOENT/) as unknown });
    const help = await run(runPolicyVerify, '--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: cri-proxy policy verify/);
    expect(help.out).toContain('Exit status:');
  });

  test('a registry that cannot be reached: not verified, naming it', async () => {
    const result = await run(runPolicyVerify, '--plain-http', '--timeout-ms', '2000', '--key', keyFile, '127.0.0.1:9/prod/app:1');
    expect(result.code).toBe(1);
    expect(result.out).toContain('registry-unavailable: registry 127.0.0.1:9');
  });
});

describe('cri-proxy policy check with verify rules', () => {
  test('shows the verification result and the signer; an unverified image is denied', async () => {
    const result = await run(runPolicyCheck, '--config', configFile, signed, unsigned, keyless, 'docker.io/library/nginx:1.27');
    expect(result.code).toBe(1);
    const lines = result.out.trim().split('\n');
    expect(lines[0]).toMatch(
      new RegExp(`^allow ${signed} by rule "prod-signed": matches .*; signed by key sha256:[0-9a-f]{64} \\(sha256:[0-9a-f]{64}\\)$`),
    );
    expect(lines[1]).toMatch(new RegExp(`^deny ${unsigned} by rule "prod-signed": not verified \\(sha256:[0-9a-f]{64}\\): no-signature: `));
    expect(lines[2]).toContain(`signed by ${IDENTITY.subject}`);
    expect(lines[3]).toBe('allow docker.io/library/nginx:1.27 by rule "public": matches "docker.io/**"');
  });

  test('--offline asks no registry', async () => {
    const result = await run(runPolicyCheck, '--offline', '--config', configFile, unsigned);
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/; needs a verified signature \(not checked: --offline\)\n$/);
  });
});
