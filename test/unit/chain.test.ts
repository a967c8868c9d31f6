import { ProxyError } from '../../src/errors';
import { Chain, compileMethodFilter, type ChainEntry, type OnError } from '../../src/chain/chain';
import { lookupMethod, methodTable } from '../../src/chain/method-table';
import type { CallContext, Interceptor, Next } from '../../src/chain/types';
import { testPodStarts } from '../support/pod-starts';

const runPod = lookupMethod('/runtime.v1.RuntimeService/RunPodSandbox');
const pull = lookupMethod('/runtime.v1.ImageService/PullImage');

function fakeCtx(): CallContext {
  return { method: runPod } as unknown as CallContext;
}

function entry(interceptor: Interceptor, onError: OnError = 'failClosed', methods?: string[]): ChainEntry {
  return { interceptor, onError, methods };
}

function recorder(name: string, log: string[]): Interceptor {
  return {
    name,
    async intercept(_ctx: CallContext, next: Next) {
      log.push(`${name}:before`);
      await next();
      log.push(`${name}:after`);
    },
  };
}

function build(entries: ChainEntry[], log: string[] = []) {
  const faults: string[] = [];
  let terminalRuns = 0;
  const chain = new Chain(
    entries,
    () => {
      terminalRuns++;
      log.push('runtime');
      return Promise.resolve();
    },
    (e) => faults.push(e.interceptor.name),
  );
  return { chain, faults, terminalRuns: () => terminalRuns };
}

describe('interceptor chain', () => {
  test('runs entries in configured order around the runtime call, not sorted', async () => {
    const log: string[] = [];
    const names = ['zeta', 'alpha', 'mid'];
    const { chain } = build(
      names.map((n) => entry(recorder(n, log))),
      log,
    );
    await chain.runnerFor(runPod)(fakeCtx());
    expect(log).toEqual(['zeta:before', 'alpha:before', 'mid:before', 'runtime', 'mid:after', 'alpha:after', 'zeta:after']);
  });

  test('an interceptor is not entered for a method it says it does not act on, nor warmed for it', async () => {
    const log: string[] = [];
    const pullsOnly: Interceptor = { ...recorder('pulls', log), appliesTo: (m) => m.name === 'PullImage' };
    const { chain } = build([entry(pullsOnly), entry(recorder('all', log))], log);
    await chain.runnerFor(runPod)(fakeCtx());
    expect(log).toEqual(['all:before', 'runtime', 'all:after']);
    log.length = 0;
    await chain.runnerFor(pull)(fakeCtx());
    expect(log).toEqual(['pulls:before', 'all:before', 'runtime', 'all:after', 'pulls:after']);
    expect(build([entry(pullsOnly)]).chain.typesRead([runPod, pull])).toEqual([
      'runtime.v1.PullImageRequest',
      'runtime.v1.PullImageResponse',
    ]);
  });

  test('an entry limited to methods is skipped for others', async () => {
    const log: string[] = [];
    const { chain } = build(
      [entry(recorder('images', log), 'failClosed', ['runtime.v1.ImageService/*']), entry(recorder('all', log))],
      log,
    );
    await chain.runnerFor(runPod)(fakeCtx());
    expect(log).toEqual(['all:before', 'runtime', 'all:after']);
    log.length = 0;
    await chain.runnerFor(pull)(fakeCtx());
    expect(log).toEqual(['images:before', 'all:before', 'runtime', 'all:after', 'images:after']);
  });

  test('a second next() is an error and the runtime is called once', async () => {
    const twice: Interceptor = {
      name: 'twice',
      async intercept(_ctx, next) {
        await next();
        await next();
      },
    };
    const { chain, faults, terminalRuns } = build([entry(twice)]);
    const run = chain.runnerFor(runPod)(fakeCtx());
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).code).toBe('INTERCEPTOR_FAILED');
    expect((err as ProxyError).message).toContain('next() more than once');
    expect(terminalRuns()).toBe(1);
    expect(faults).toEqual(['twice']);
  });

  const broken: Interceptor = {
    name: 'broken',
    intercept() {
      return Promise.reject(new TypeError('boom'));
    },
  };

  test('failClosed: a throwing interceptor fails the call with a clear status and the runtime is not called', async () => {
    const { chain, faults, terminalRuns } = build([entry(broken, 'failClosed')]);
    const err = await chain
      .runnerFor(runPod)(fakeCtx())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).grpcStatus).toBe(13);
    expect((err as ProxyError).message).toContain('interceptor "broken" failed: boom');
    expect(terminalRuns()).toBe(0);
    expect(faults).toEqual(['broken']);
  });

  test('failOpen: a throwing interceptor is counted and the call proceeds', async () => {
    const { chain, faults, terminalRuns } = build([entry(broken, 'failOpen')]);
    await chain.runnerFor(runPod)(fakeCtx());
    expect(terminalRuns()).toBe(1);
    expect(faults).toEqual(['broken']);
  });

  test('failOpen after next(): the call keeps its outcome', async () => {
    const late: Interceptor = {
      name: 'late',
      async intercept(_ctx, next) {
        await next();
        throw new Error('after');
      },
    };
    const { chain, faults, terminalRuns } = build([entry(late, 'failOpen')]);
    await chain.runnerFor(runPod)(fakeCtx());
    expect(terminalRuns()).toBe(1);
    expect(faults).toEqual(['late']);
  });

  test('a decision (ProxyError) passes through failOpen untouched', async () => {
    const deny: Interceptor = {
      name: 'deny',
      intercept() {
        return Promise.reject(new ProxyError('POLICY_DENIED', 'no'));
      },
    };
    const { chain, faults } = build([entry(deny, 'failOpen')]);
    await expect(chain.runnerFor(runPod)(fakeCtx())).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(faults).toEqual([]);
  });

  test("the runtime step's failure passes through every interceptor as is, not as their fault", async () => {
    const failure = new ProxyError('UPSTREAM_UNAVAILABLE', 'down');
    const chain = new Chain(
      [entry(recorder('a', [])), entry(recorder('b', []), 'failOpen')],
      () => Promise.reject(failure),
      () => {
        throw new Error('no fault expected');
      },
    );
    await expect(chain.runnerFor(runPod)(fakeCtx())).rejects.toBe(failure);
  });

  test("a bug in the proxy's own last step is PROXY_INTERNAL, never blamed on an interceptor", async () => {
    const faults: string[] = [];
    const chain = new Chain(
      [entry(recorder('a', []))],
      () => Promise.reject(new TypeError('x is undefined')),
      (e) => faults.push(e.interceptor.name),
    );
    await expect(chain.runnerFor(runPod)(fakeCtx())).rejects.toMatchObject({
      code: 'PROXY_INTERNAL',
      message: 'cri-proxy internal error: x is undefined',
    });
    expect(faults).toEqual([]);
  });

  test('a method no entry applies to runs the last step itself, its failures passed as they are', async () => {
    const bug = new TypeError('x is undefined');
    const terminal = (): Promise<void> => Promise.reject(bug);
    const chain = new Chain([{ ...entry(recorder('a', [])), methods: ['Version'] }], terminal, () => undefined);
    expect(chain.runnerFor(runPod)).toBe(terminal);
    await expect(new Chain([], terminal, () => undefined).runnerFor(runPod)(fakeCtx())).rejects.toBe(bug);
  });

  test('a failing fault listener changes nothing and blames no outer interceptor', async () => {
    const boom: Interceptor = { name: 'boom', intercept: () => Promise.reject(new Error('inner bug')) };
    const outerFaults: string[] = [];
    const chain = new Chain(
      [entry(recorder('outer', [])), entry(boom, 'failOpen')],
      () => Promise.resolve(),
      (e) => {
        outerFaults.push(e.interceptor.name);
        throw new Error('listener bug');
      },
    );
    await expect(chain.runnerFor(runPod)(fakeCtx())).resolves.toBeUndefined();
    expect(outerFaults).toEqual(['boom']);
  });

  test('a coded interceptor fault obeys onError and, failClosed, keeps its own code', async () => {
    const auditDown: Interceptor = {
      name: 'audit',
      async intercept(_ctx, next) {
        await next();
        throw new ProxyError('AUDIT_WRITE_FAILED', 'cri-proxy: audit log write failed: ENOSPC');
      },
    };
    const closed = build([entry(auditDown, 'failClosed')]);
    await expect(closed.chain.runnerFor(runPod)(fakeCtx())).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' });
    expect(closed.faults).toEqual(['audit']);
    const open = build([entry(auditDown, 'failOpen')]);
    await expect(open.chain.runnerFor(runPod)(fakeCtx())).resolves.toBeUndefined();
    expect(open.faults).toEqual(['audit']);
  });
});

describe('message types a chain may decode (what start-up warms)', () => {
  test('none without entries', () => {
    expect(build([]).chain.typesRead(methodTable)).toEqual([]);
  });

  test('none for the pod-start observer, which reads the wire', () => {
    const { feed, subscribers } = testPodStarts();
    const chain = new Chain(
      [],
      () => Promise.resolve(),
      () => undefined,
      feed.observer(subscribers),
    );
    expect(methodTable.filter((m) => feed.observer(subscribers).around(m) !== undefined)).toHaveLength(5);
    expect(chain.typesRead(methodTable)).toEqual([]);
    feed.close();
  });

  test('the requests of the methods entries run for, and only the responses the table marks as read', () => {
    const listContainers = lookupMethod('/runtime.v1.RuntimeService/ListContainers');
    const { chain } = build([entry(recorder('images', []), 'failClosed', ['PullImage', 'ListContainers'])]);
    expect(chain.typesRead([runPod, pull, listContainers])).toEqual([
      'runtime.v1.PullImageRequest',
      'runtime.v1.PullImageResponse',
      'runtime.v1.ListContainersRequest',
    ]);
  });
});

describe('method filters', () => {
  test.each([
    [['RunPodSandbox'], runPod, true],
    [['RunPodSandbox'], pull, false],
    [['runtime.v1.ImageService/*'], pull, true],
    [['*Sandbox'], runPod, true],
    [['*Sandbox'], pull, false],
    [['runtime.v1.RuntimeService/Run*', 'PullImage'], pull, true],
    [[], pull, true],
    [['Pull.Image'], pull, false],
  ] as const)('%j on %p: %s', (patterns, method, expected) => {
    expect(compileMethodFilter(patterns)(method)).toBe(expected);
  });
});
