/**
 * The image policy's signature check of one image at one door: where the digest comes from (the registry, for an
 * image about to be pulled; the runtime, for one already on the node), the verification itself (cached, else
 * online), and what it is observed as (a span under the call's, metrics). Door-specific work that follows a
 * decision (a pull's confirmation) is not here.
 */
import { SpanStatusCode, type Span } from '@opentelemetry/api';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { errorMessage } from '../../errors';
import { METRIC } from '../../metrics/names';
import { ensureCounter, ensureGauge, ensureHistogram } from '../../metrics/registry';
import { callSpanOf } from '../../observability/call-span';
import { parseImageReference, type ImageReference } from '../../policies/image-reference';
import { inRepository, type Repository, type SignedTarget } from '../../policies/signature-claims';
import { describeSigner, furthest, unverified, type Unverified, type VerificationResult } from '../../provenance/outcome';
import type { Provenance } from '../../provenance/provenance';
import type { Credentials } from '../../provenance/registry/auth';
import type { RuleTrust } from '../../provenance/trust';
import type { CallContext } from '../../chain/types';
import {
  ATTR_IMAGE_DIGEST,
  ATTR_IMAGE_POLICY_RULE,
  ATTR_VERIFICATION_CACHED,
  ATTR_VERIFICATION_RESULT,
  ATTR_VERIFICATION_SIGNER,
  SPAN_IMAGE_VERIFICATION,
} from '../tracing/attributes';

/** Where the digest to verify comes from. */
export type DigestSource =
  /** The registry, now: the image is about to be pulled (a tag is resolved to the digest it names). */
  | { readonly from: 'registry'; readonly credentials: Credentials | undefined }
  /** The runtime's record of the image (`ImageStatus` repo digests): the image is on the node. */
  | { readonly from: 'node'; readonly names: () => Promise<readonly string[]> };

export interface VerifyImage {
  readonly ctx: CallContext;
  /** The name the policy decided on. */
  readonly ref: ImageReference;
  readonly rule: string;
  readonly trust: RuleTrust;
  readonly source: DigestSource;
}

export interface ImageVerificationOutcome {
  readonly result: VerificationResult;
  /** The digest verified (or that failed); undefined when none could be found. */
  readonly digest: string | undefined;
  readonly cached: boolean;
}

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The digests the runtime records for the image in `repository` (`registry/repo@sha256:…` names). */
export function repositoryDigests(names: readonly string[], repository: Repository): string[] {
  const digests: string[] = [];
  for (const name of names) {
    const parsed = parseImageReference(name);
    if (!parsed.ok || parsed.ref.digest === undefined) continue;
    if (inRepository(parsed.ref, repository) && !digests.includes(parsed.ref.digest)) digests.push(parsed.ref.digest);
  }
  return digests;
}

export class ImageVerification {
  private readonly verifications: Counter<'rule' | 'result'>;
  private readonly cacheHits: Counter<'rule'>;
  private readonly durations: Histogram<'result'>;
  private readonly cacheEntries: Gauge;

  constructor(
    readonly provenance: Provenance,
    registry: Registry,
  ) {
    this.verifications = ensureCounter(registry, {
      name: METRIC.imageVerificationsTotal,
      help: 'Image signature verifications, by rule and result (verified, or why not); cache hits included',
      labelNames: ['rule', 'result'] as const,
    });
    this.cacheHits = ensureCounter(registry, {
      name: METRIC.imageVerificationCacheHitsTotal,
      help: 'Image signature verifications answered by the cache of verified digests, by rule',
      labelNames: ['rule'] as const,
    });
    this.durations = ensureHistogram(registry, {
      name: METRIC.imageVerificationDurationSeconds,
      help: 'Time taken by image signature verifications that asked the registry, by result',
      labelNames: ['result'] as const,
      buckets: DURATION_BUCKETS,
    });
    this.cacheEntries = ensureGauge(registry, {
      name: METRIC.imageVerificationCacheEntries,
      help: 'Digests in the cache of verified digests',
      labelNames: [],
    });
  }

  /** Verifies the image `ref` names, as the rule's trust asks; never throws for what the registry or runtime do. */
  async verify(request: VerifyImage): Promise<ImageVerificationOutcome> {
    const started = process.hrtime.bigint();
    const span = this.startSpan(request);
    let outcome: ImageVerificationOutcome;
    try {
      outcome = await this.run(request);
    } catch (err) {
      span?.end();
      throw err;
    }
    const result = outcome.result.ok ? 'verified' : outcome.result.failure;
    this.verifications.inc({ rule: request.rule, result });
    if (outcome.cached) this.cacheHits.inc({ rule: request.rule });
    else this.durations.observe({ result }, Number(process.hrtime.bigint() - started) / 1e9);
    this.cacheEntries.set(this.provenance.cacheSize);
    if (span !== undefined) this.endSpan(span, outcome);
    return outcome;
  }

  private async run(request: VerifyImage): Promise<ImageVerificationOutcome> {
    const { ref, trust, source, ctx } = request;
    const repository = { registry: ref.registry, repository: ref.repository };
    if (source.from === 'registry') {
      const answer = await this.provenance.verifyName(trust, ref, { credentials: source.credentials, deadline: ctx.deadline });
      return { result: answer.result, digest: answer.digest, cached: answer.cached };
    }
    let names: readonly string[];
    try {
      names = await source.names();
    } catch (err) {
      const detail = `the runtime could not be asked for the image's digest: ${errorMessage(err)}`;
      return { result: unverified('digest-unknown', detail), digest: undefined, cached: false };
    }
    const digests = repositoryDigests(names, ref);
    if (digests.length === 0) {
      const detail = `the runtime knows no digest of ${ref.registry}/${ref.repository} for this image (it was not pulled from there)`;
      return { result: unverified('digest-unknown', detail), digest: undefined, cached: false };
    }
    // Several digests (an image pulled by two indexes): one verified is enough.
    let worst: { result: Unverified; digest: string } | undefined;
    for (const digest of digests) {
      const target: SignedTarget = { ...repository, digest };
      const answer = await this.provenance.verify({ trust, target, deadline: ctx.deadline });
      if (answer.result.ok) return { result: answer.result, digest, cached: answer.cached };
      if (worst === undefined || furthest(worst.result, answer.result) !== worst.result) worst = { result: answer.result, digest };
    }
    if (worst === undefined) throw new Error('no digest was verified');
    return { result: worst.result, digest: worst.digest, cached: false };
  }

  private startSpan(request: VerifyImage): Span | undefined {
    const parent = callSpanOf(request.ctx.state);
    if (parent === undefined) return undefined;
    try {
      return parent.tracer.startSpan(SPAN_IMAGE_VERIFICATION, { attributes: { [ATTR_IMAGE_POLICY_RULE]: request.rule } }, parent.context);
    } catch {
      // Tracing never changes a decision.
      return undefined;
    }
  }

  private endSpan(span: Span, outcome: ImageVerificationOutcome): void {
    try {
      const { result } = outcome;
      span.setAttribute(ATTR_VERIFICATION_RESULT, result.ok ? 'verified' : result.failure);
      span.setAttribute(ATTR_VERIFICATION_CACHED, outcome.cached);
      if (outcome.digest !== undefined) span.setAttribute(ATTR_IMAGE_DIGEST, outcome.digest);
      if (result.ok) span.setAttribute(ATTR_VERIFICATION_SIGNER, describeSigner(result.signer));
      else span.setStatus({ code: SpanStatusCode.ERROR, message: result.detail });
      span.end();
    } catch {
      // Tracing never changes a decision.
    }
  }
}
