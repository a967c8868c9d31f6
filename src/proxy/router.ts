import type { Backends } from '../chain/backends';
import { ProxyError } from '../errors';
import type { Upstream } from './upstream';

/**
 * Picks the runtime a call goes to: the one an interceptor named on the context (routing by runtime
 * handler, say), else the default backend.
 */
export class Router implements Backends {
  private readonly byName: ReadonlyMap<string, Upstream>;

  constructor(
    upstreams: readonly Upstream[],
    readonly defaultBackend: string,
  ) {
    this.byName = new Map(upstreams.map((u) => [u.name, u]));
    if (!this.byName.has(defaultBackend)) throw new Error(`default backend "${defaultBackend}" is not defined`);
  }

  get upstreams(): Iterable<Upstream> {
    return this.byName.values();
  }

  get(name: string): Upstream | undefined {
    return this.byName.get(name);
  }

  pick(requested: string | undefined): Upstream {
    const name = requested ?? this.defaultBackend;
    const upstream = this.byName.get(name);
    if (!upstream) throw new ProxyError('NO_BACKEND', `no backend named "${name}" is configured`);
    return upstream;
  }

  close(): void {
    for (const upstream of this.byName.values()) upstream.close();
  }
}
