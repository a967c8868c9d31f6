import { ProxyError } from '../../src/errors';
import { decodeMessage, encodeMessage } from '../../src/messages/codec';
import { fieldAt } from '../../src/messages/field-at';

const runPodSandbox = {
  config: {
    metadata: { name: 'web-0', namespace: 'shop', uid: '6f1c0a3e', attempt: 2 },
    hostname: 'web-0',
    labels: { app: 'web', tier: 'front' },
    port_mappings: [{ protocol: 'UDP', container_port: 53, host_port: 5353 }],
    linux: {
      security_context: {
        run_as_user: { value: '1000' },
        seccomp: { profile_type: 'Localhost', localhost_ref: 'profiles/web.json' },
        supplemental_groups: ['5', '9007199254740993'],
      },
    },
  },
  runtime_handler: 'runc',
};

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('codec', () => {
  it('round-trips a request with maps, enums, 64-bit ints and nested messages', () => {
    const bytes = encodeMessage('runtime.v1.RunPodSandboxRequest', runPodSandbox);
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect(decodeMessage('runtime.v1.RunPodSandboxRequest', bytes)).toEqual(runPodSandbox);
  });

  it('returns bytes fields as Buffers, also when given a plain Uint8Array', () => {
    const bytes = encodeMessage('runtime.v1.ExecSyncResponse', { stdout: Buffer.from('hello\n'), exit_code: 3 });
    const decoded = decodeMessage('runtime.v1.ExecSyncResponse', new Uint8Array(bytes));
    expect(Buffer.isBuffer(decoded['stdout'])).toBe(true);
    expect(decoded).toEqual({ stdout: Buffer.from('hello\n'), exit_code: 3 });
  });

  it('leaves absent fields out (no defaults)', () => {
    expect(decodeMessage('runtime.v1.StopContainerRequest', Buffer.alloc(0))).toEqual({});
    const bytes = encodeMessage('runtime.v1.StopContainerRequest', { container_id: 'abc', timeout: '30' });
    expect(decodeMessage('runtime.v1.StopContainerRequest', bytes)).toEqual({ container_id: 'abc', timeout: '30' });
  });

  it('drops fields the schema does not know', () => {
    const known = encodeMessage('runtime.v1.VersionResponse', { runtime_name: 'containerd', version: '0.1.0' });
    // field 15, varint 7; field 16, length-delimited "xy": what a newer runtime might add
    const unknown = Buffer.from([0x78, 0x07, 0x82, 0x01, 0x02, 0x78, 0x79]);
    const decoded = decodeMessage('runtime.v1.VersionResponse', Buffer.concat([known, unknown]));
    expect(decoded).toEqual({ runtime_name: 'containerd', version: '0.1.0' });
  });

  it.each([
    ['a length past the end', [0x0a, 0x05, 0x61]],
    ['an invalid wire type', [0x0f, 0x01]],
    ['a truncated varint', [0x10, 0xff]],
  ])('rejects %s as MALFORMED_REQUEST', (_what, bytes) => {
    const err = thrown(() => decodeMessage('runtime.v1.RunPodSandboxRequest', Buffer.from(bytes)));
    expect(err).toBeInstanceOf(ProxyError);
    expect(err).toMatchObject({ code: 'MALFORMED_REQUEST', grpcStatus: 3 });
  });

  it('rejects an unknown type as MALFORMED_REQUEST', () => {
    for (const name of ['runtime.v1.NoSuchRequest', 'runtime.v1.RuntimeService', 'runtime.v1.Protocol']) {
      expect(thrown(() => decodeMessage(name, Buffer.alloc(0)))).toMatchObject({ code: 'MALFORMED_REQUEST' });
    }
  });

  describe('fieldAt', () => {
    const decoded = decodeMessage('runtime.v1.RunPodSandboxRequest', encodeMessage('runtime.v1.RunPodSandboxRequest', runPodSandbox));

    it('reads strings at dotted paths', () => {
      expect(fieldAt(decoded, 'config.metadata.name')).toBe('web-0');
      expect(fieldAt(decoded, 'config.metadata.namespace')).toBe('shop');
      expect(fieldAt(decoded, 'runtime_handler')).toBe('runc');
      expect(fieldAt(decoded, 'config.labels.app')).toBe('web');
      expect(fieldAt(decoded, 'config.linux.security_context.run_as_user.value')).toBe('1000');
    });

    it('returns undefined for absent paths, non-strings and no message', () => {
      expect(fieldAt(decoded, 'config.log_directory')).toBeUndefined();
      expect(fieldAt(decoded, 'config.windows.security_context.run_as_username')).toBeUndefined();
      expect(fieldAt(decoded, 'config.metadata')).toBeUndefined();
      expect(fieldAt(decoded, 'config.metadata.attempt')).toBeUndefined();
      expect(fieldAt(decoded, 'runtime_handler.length')).toBeUndefined();
      expect(fieldAt(decoded, '')).toBeUndefined();
      expect(fieldAt(undefined, 'config.metadata.name')).toBeUndefined();
    });

    it('never reads inherited properties', () => {
      expect(fieldAt(decoded, 'constructor.name')).toBeUndefined();
      expect(fieldAt(decoded, '__proto__.constructor.name')).toBeUndefined();
      expect(fieldAt(decoded, 'config.toString')).toBeUndefined();
    });
  });
});
