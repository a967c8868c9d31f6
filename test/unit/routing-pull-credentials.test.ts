import { inspect } from 'node:util';
import { PullCredentials } from '../../src/interceptors/routing/pull-credentials';
import { decodeMessage } from '../../src/messages/codec';
import { encode } from '../support/fake-backends';

const pullWith = (image: string, auth?: Record<string, string>): Buffer =>
  encode('PullImageRequest', { image: { image }, ...(auth ? { auth } : {}) });
const authOf = (bytes: Buffer | undefined): unknown => (bytes === undefined ? undefined : decodeMessage('runtime.v1.AuthConfig', bytes));

test('kept per repository, whatever the tag, digest or spelling of the name', () => {
  const credentials = new PullCredentials(10);
  credentials.learn('busybox:1.36', pullWith('busybox:1.36', { username: 'u', password: 'p' }));
  for (const image of ['busybox', 'docker.io/library/busybox:latest', `index.docker.io/library/busybox@sha256:${'a'.repeat(64)}`]) {
    expect([image, authOf(credentials.for(image))]).toEqual([image, { username: 'u', password: 'p' }]);
  }
  expect(credentials.for('registry.example/busybox:1.36')).toBeUndefined();
  expect(credentials.for(`sha256:${'a'.repeat(64)}`)).toBeUndefined();
});

test('the last pull that worked decides: new credentials replace the old, a pull without any forgets them', () => {
  const credentials = new PullCredentials(10);
  credentials.learn('registry.example/app:1', pullWith('registry.example/app:1', { username: 'old' }));
  credentials.learn('registry.example/app:2', pullWith('registry.example/app:2', { username: 'new' }));
  expect(authOf(credentials.for('registry.example/app:3'))).toEqual({ username: 'new' });
  credentials.learn('registry.example/app:2', pullWith('registry.example/app:2'));
  expect(credentials.for('registry.example/app:3')).toBeUndefined();
});

test('bounded: the oldest repository is dropped, its bytes zeroed; 0 keeps nothing', () => {
  const credentials = new PullCredentials(1);
  credentials.learn('registry.example/a:1', pullWith('registry.example/a:1', { password: 'first' }));
  const first = credentials.for('registry.example/a:1');
  credentials.learn('registry.example/b:1', pullWith('registry.example/b:1', { password: 'second' }));
  expect([credentials.size, credentials.for('registry.example/a:1')]).toEqual([1, undefined]);
  expect(first?.every((byte) => byte === 0)).toBe(true);
  const none = new PullCredentials(0);
  none.learn('registry.example/a:1', pullWith('registry.example/a:1', { password: 'x' }));
  expect([none.size, none.for('registry.example/a:1')]).toEqual([0, undefined]);
});

test('a copy is kept (the request may be reused), and nothing shows the values', () => {
  const credentials = new PullCredentials(10);
  const request = pullWith('registry.example/a:1', { password: 'hunter2' });
  credentials.learn('registry.example/a:1', request);
  request.fill(0);
  expect(authOf(credentials.for('registry.example/a:1'))).toEqual({ password: 'hunter2' });
  expect(inspect(credentials, { depth: 10, showHidden: true, customInspect: true })).not.toContain('hunter2');
  expect(JSON.stringify({ credentials })).not.toContain('hunter2');
});
