/** Fakes of the two functions routing reaches runtimes through: scripted unary answers, hand-driven streams. */
import type { BackendReply, BackendStatus, CallBackend, StreamBackend } from '../../src/interceptors/routing/backend-call';
import { encodeMessage } from '../../src/messages/codec';
import { lengthDelimited } from '../../src/messages/protobuf-wire';

export const ok = (body?: Buffer): BackendReply => ({ code: 0, message: '', trailers: ['grpc-status', '0'], body });
export const fail = (code: number, message: string): BackendReply => ({ code, message, trailers: ['grpc-status', String(code)] });

export const encode = (type: string, value: Record<string, unknown>): Buffer => encodeMessage(`runtime.v1.${type}`, value);

/** `message` with a field this schema does not know appended (number 999, a string). */
export const withUnknown = (message: Buffer, text = 'from the future'): Buffer =>
  Buffer.concat([message, lengthDelimited(999, Buffer.from(text))]);

/** A list response: each item's bytes as field `number`. */
export const listOf = (items: readonly Buffer[], number = 1): Buffer => Buffer.concat(items.map((i) => lengthDelimited(number, i)));

export interface RecordedCall {
  readonly backend: string;
  readonly path: string;
  readonly method: string;
  readonly request: Buffer;
  readonly deadline: number | undefined;
}

/** Answers per backend by method name; a method without an answer is UNIMPLEMENTED, a missing backend UNAVAILABLE. */
export type Script = Readonly<
  Record<string, Readonly<Record<string, BackendReply | ((request: Buffer) => BackendReply | Promise<BackendReply>)>>>
>;

export function fakeCall(script: Script): { call: CallBackend; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const call: CallBackend = async (backend, path, request, _metadata, deadline) => {
    const method = path.slice(path.lastIndexOf('/') + 1);
    calls.push({ backend, path, method, request, deadline });
    const answers = script[backend];
    if (answers === undefined) return fail(14, `runtime "${backend}" at unix:///run/${backend}.sock is unavailable: connect ENOENT`);
    const answer = answers[method];
    if (answer === undefined) return fail(12, `unknown method ${method}`);
    return typeof answer === 'function' ? answer(request) : answer;
  };
  return { call, calls };
}

/** One stream opened through the fake: push messages into it, end it. */
export interface OpenStream {
  readonly backend: string;
  readonly path: string;
  readonly request: Buffer;
  readonly signal: AbortSignal;
  /** Delivers a message; resolves once the consumer has taken it (its back-pressure). */
  push(message: Buffer): Promise<void>;
  end(status?: Partial<BackendStatus>): void;
  readonly ended: boolean;
}

export class FakeStreams {
  readonly opened: OpenStream[] = [];
  private readonly waiters: (() => void)[] = [];

  readonly stream: StreamBackend = (backend, path, request, _metadata, _deadline, signal, onMessage) =>
    new Promise<BackendStatus>((resolve) => {
      let ended = false;
      const finish = (status: BackendStatus): void => {
        if (ended) return;
        ended = true;
        resolve(status);
      };
      signal.addEventListener('abort', () => finish({ code: 1, message: 'cancelled', trailers: [] }), { once: true });
      this.opened.push({
        backend,
        path,
        request,
        signal,
        push: async (message) => {
          if (!ended) await onMessage(message);
        },
        end: (status = {}) => finish({ code: 0, message: '', trailers: [], ...status }),
        get ended() {
          return ended;
        },
      });
      for (const w of this.waiters.splice(0)) w();
    });

  /** The streams opened to `backend` so far, oldest first. */
  to(backend: string): OpenStream[] {
    return this.opened.filter((s) => s.backend === backend);
  }

  /** Resolves once `count` streams in all have been opened. */
  async waitForOpened(count: number): Promise<void> {
    while (this.opened.length < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}
