import { GrpcStatus } from '../errors';
import { CANCELLED_OUTCOME } from './call-outcome';
import type { CallOutcome, ResponseStream } from '../chain/types';

/** A response the proxy streams itself pauses its producer above this many unsent bytes. */
const STREAM_HIGH_WATER = 256 * 1024;

/** What an own response needs of the client stream it is written to. */
export interface OwnResponseHost {
  readonly cancelled: boolean;
  readonly localEnded: boolean;
  /** Frames and sends one message; returns its framed size, and `onSent` reports bytes written. */
  sendOwnMessage(message: Buffer, onSent: (bytes: number) => void): number;
  endOwnResponse(code: number, message: string): void;
}

/** A response the proxy streams itself, paced by what the client takes. */
export class OwnResponse implements ResponseStream {
  private unsent = 0;
  private ended = false;
  private drainWaiters: (() => void)[] | undefined;
  private readonly sent = (bytes: number): void => {
    this.unsent -= bytes;
    if (this.unsent < STREAM_HIGH_WATER / 2) this.wakeDrainWaiters();
  };

  constructor(
    private readonly stream: OwnResponseHost,
    private readonly onEnd: (outcome: CallOutcome) => void,
  ) {}

  get closed(): boolean {
    return this.ended || this.stream.cancelled || this.stream.localEnded;
  }

  write(message: Buffer): boolean {
    if (this.closed) return false;
    this.unsent += this.stream.sendOwnMessage(message, this.sent);
    return this.unsent < STREAM_HIGH_WATER;
  }

  drained(): Promise<void> {
    if (this.closed || this.unsent < STREAM_HIGH_WATER / 2) return Promise.resolve();
    return new Promise<void>((resolve) => (this.drainWaiters ??= []).push(resolve));
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = undefined;
    if (waiters) for (const wake of waiters) wake();
  }

  end(code: number = GrpcStatus.OK, message = ''): void {
    if (this.closed) return;
    this.ended = true;
    this.stream.endOwnResponse(code, message);
    this.onEnd({ code, message, fromProxy: true });
  }

  /** The client went away: the call ends CANCELLED, whatever its writer does next. */
  abandon(): void {
    this.wakeDrainWaiters();
    if (this.ended) return;
    this.ended = true;
    this.onEnd(CANCELLED_OUTCOME);
  }
}
