import * as http from 'node:http';
import type { Registry } from 'prom-client';
import { errorMessage } from '../errors';
import type { Logger } from '../log';

export interface Readiness {
  readonly ready: boolean;
  readonly detail: string;
}

/** An answer of a page or API the proxy serves beside the health and metrics endpoints. */
export interface AdminResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Serves one path; gets the request's URL (query included). */
export type AdminRoute = (url: URL) => AdminResponse;

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly log: Logger;
  readonly registry: Registry;
  /** Ready means every runtime answers; checked on each probe. */
  readonly readiness: () => Promise<Readiness>;
  /** More paths (the pod starts page and API), by exact path. */
  readonly routes?: ReadonlyMap<string, AdminRoute>;
}

/** The HTTP side: `/healthz` (the process is alive), `/readyz` (the runtimes answer), `/metrics`, and `routes`. */
export class AdminServer {
  private readonly server: http.Server;

  constructor(private readonly options: AdminServerOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        options.log.warn('admin request failed', { path: req.url, error: errorMessage(err) });
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      });
    });
  }

  get address(): string {
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') return String(addr);
    return addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const route = this.options.routes?.get(path);
    if (route !== undefined) {
      const answer = route(new URL(req.url ?? '/', 'http://admin.invalid'));
      res.writeHead(answer.status, answer.headers).end(req.method === 'HEAD' ? undefined : answer.body);
      return;
    }
    switch (path) {
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const readiness = await this.options.readiness();
        res.writeHead(readiness.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${readiness.detail}\n`);
        return;
      }
      case '/metrics': {
        const body = await this.options.registry.metrics();
        res.writeHead(200, { 'content-type': this.options.registry.contentType }).end(body);
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  }
}
