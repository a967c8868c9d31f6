import { silentLogger } from '../../src/log';
import { Metadata, OutgoingMetadata } from '../../src/chain/metadata';
import { lookupMethod } from '../../src/chain/method-table';
import type { CallContext } from '../../src/chain/types';

/** A call context with nothing behind it, for unit tests of interceptors: override what the test needs. */
export function fakeCallContext(path: string, metadata: Readonly<Record<string, string>> = {}): CallContext {
  const notHere = (): never => {
    throw new Error('not available in this test');
  };
  return {
    method: lookupMethod(path),
    metadata: new Metadata(Object.entries(metadata).flat()),
    deadline: undefined,
    startedAt: process.hrtime.bigint(),
    signal: new AbortController().signal,
    log: silentLogger,
    backend: undefined,
    upstreamMetadata: new OutgoingMetadata(),
    state: new Map<unknown, unknown>(),
    request: () => Promise.resolve(undefined),
    requestBytes: () => Promise.resolve(undefined),
    firstRequestMessage: () => Promise.resolve(undefined),
    response: () => undefined,
    responseBytes: () => undefined,
    onResponseMessage: () => undefined,
    respond: notHere,
    replaceRequest: notHere,
    openResponse: notHere,
    outcome: undefined,
    upstreamNanos: 0n,
  };
}
