import { ConnectionError, ErrorCode } from './frames';

/**
 * The streams a client opened and those it wasted: reset before their call ended (CVE-2023-44487, rapid reset),
 * refused as malformed or over a limit (CVE-2019-9514, reset flood). Both cost the proxy, and maybe the runtime,
 * work for nothing. Past `max` wasted streams, once they are at least half of all it opened, the client is let go
 * (as Envoy does with premature resets): one whose calls mostly complete never gets there, however long it lives.
 */
export class StreamBudget {
  private opened = 0;
  private wasted = 0;

  constructor(private readonly max: number) {}

  open(): void {
    this.opened++;
  }

  /** Counts a wasted stream; the connection error to end the connection with, once past the budget. */
  waste(): ConnectionError | undefined {
    this.wasted++;
    if (this.wasted < this.max || this.wasted * 2 < this.opened) return undefined;
    return new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `${this.wasted} of ${this.opened} streams reset or refused`, 'resetStreams');
  }
}
