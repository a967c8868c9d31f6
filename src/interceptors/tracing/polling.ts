/**
 * Which polling calls get a span. kubelet calls `List*`, `*Status`, `*Stats` and `Version` in a loop, a hundred
 * times a minute or more on a busy node, and a span for each costs more than the call itself through the proxy.
 * So a polling call is traced from its start only when the caller's trace context says it is sampled, or else at
 * `pollingSamplingRatio`; one left out that fails or takes `slowCallMs` or longer is traced anyway, once it ends,
 * with the times it really had. Calls that change state (a pod's life) are not concerned: they are all traced.
 */

/** `00-<trace id>-<span id>-<flags>`: the flags of a W3C traceparent (version 00 and later ones alike). */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-([0-9a-f]{2})/;

export class PollingSampling {
  private readonly slowNs: bigint;

  constructor(
    private readonly ratio: number,
    slowCallMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.slowNs = BigInt(slowCallMs) * 1_000_000n;
  }

  /** Whether a polling call gets its span from the start: the caller's sampling decision if it sent one, else the ratio. */
  tracedFromStart(traceparent: string | undefined): boolean {
    const flags = traceparent === undefined ? undefined : TRACEPARENT.exec(traceparent)?.[1];
    if (flags !== undefined) return (parseInt(flags, 16) & 1) === 1;
    return this.ratio >= 1 || (this.ratio > 0 && this.random() < this.ratio);
  }

  /** Whether a polling call left out at its start is worth a span now that it has ended. */
  worthLateSpan(code: number, elapsedNs: bigint): boolean {
    return code !== 0 || elapsedNs >= this.slowNs;
  }
}
