import * as grpc from '@grpc/grpc-js';
import { failure, type ExportTransport, type SendResult } from './otlp-exporter';
import type { OtlpSettings } from './otlp-settings';
import { lookupHost } from './name-lookup';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const raw = (bytes: Buffer): Buffer => bytes;

/**
 * OTLP/gRPC: an Export call per export on a channel of its own; a failed call fails its export. The collector's
 * name is looked up here (lookupHost, which a shutdown cancels) and the channel dialled by address, with the name
 * kept as authority and TLS server name; after a failed export the next one looks the name up again.
 */
export class OtlpGrpcTransport implements ExportTransport {
  private client: grpc.Client | undefined;
  private closed = false;
  /** The Export call in flight: a channel closes its connection only once no call holds it. */
  private calling = false;

  private readonly credentials: grpc.ChannelCredentials;
  private readonly metadata = new grpc.Metadata();

  constructor(private readonly settings: OtlpSettings) {
    const { ca, key, cert } = settings.tls;
    this.credentials = settings.url.protocol === 'http:' ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(ca, key, cert);
    for (const [name, value] of Object.entries(settings.headers)) this.metadata.set(name, value);
  }

  async send(body: Uint8Array, signal: AbortSignal, deadline: number): Promise<SendResult> {
    let client: grpc.Client;
    try {
      client = this.client ?? (await this.connect(signal));
    } catch (err) {
      return failure(err, false);
    }
    this.client = client;
    return new Promise((resolve) => {
      this.calling = true;
      const call = client.makeUnaryRequest(EXPORT_PATH, raw, raw, Buffer.from(body), this.metadata.clone(), { deadline }, (err) => {
        this.calling = false;
        signal.removeEventListener('abort', cancel);
        // Not retried, as by OpenTelemetry's OTLP/gRPC exporter: the next batch goes on a new channel.
        if (err !== null || this.closed) this.dropClient();
        resolve(err === null ? { ok: true } : failure(err, false));
      });
      const cancel = (): void => call.cancel();
      signal.addEventListener('abort', cancel, { once: true });
    });
  }

  /** Closes the channel now, or as soon as the call in flight (cancelled by the exporter first) has ended. */
  close(): void {
    this.closed = true;
    if (!this.calling) this.dropClient();
  }

  private dropClient(): void {
    this.client?.close();
    this.client = undefined;
  }

  private async connect(signal: AbortSignal): Promise<grpc.Client> {
    const { hostname, port } = this.settings.url;
    const host = hostname.replace(/^\[(.*)\]$/, '$1');
    const [address] = await lookupHost(host, signal);
    signal.throwIfAborted();
    if (address === undefined) throw new Error(`${host} has no address`);
    if (this.closed) throw new Error('the exporter was shut down');
    const dialled = port === '' ? (this.settings.url.protocol === 'http:' ? '80' : '443') : port;
    const target = address.family === 6 ? `ipv6:[${address.address}]:${dialled}` : `ipv4:${address.address}:${dialled}`;
    return new grpc.Client(target, this.credentials, {
      'grpc.default_authority': this.settings.url.host,
      'grpc.ssl_target_name_override': host,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.primary_user_agent': 'cri-proxy',
      ...(this.settings.gzip ? { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip } : {}),
    });
  }
}
