import { promises as dns } from 'node:dns';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';

/** Where names are looked up; the system's files unless given (tests give their own). */
export interface LookupSources {
  readonly hostsFile?: string;
  /** `ip` or `ip:port` of DNS servers, instead of those in /etc/resolv.conf. */
  readonly dnsServers?: readonly string[];
}

export interface LookupAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/**
 * Looks a collector's host name up the way `hosts: files dns` in nsswitch.conf does: /etc/hosts first, then DNS as
 * /etc/resolv.conf sets it up (servers, search domains). Unlike dns.lookup() (getaddrinfo on libuv's threadpool,
 * which nothing can cancel and which a process waits for when it exits) a lookup runs on the event loop and ends
 * the moment `signal` aborts: a DNS server that does not answer cannot hold up a stop.
 */
export async function lookupHost(hostname: string, signal: AbortSignal, where: LookupSources = {}): Promise<LookupAddress[]> {
  const { hostsFile = '/etc/hosts', dnsServers } = where;
  const literal = isIP(hostname.replace(/^\[(.*)\]$/, '$1'));
  if (literal !== 0) return [{ address: hostname.replace(/^\[(.*)\]$/, '$1'), family: literal === 6 ? 6 : 4 }];
  const fromHosts = hostsEntries(await readFile(hostsFile, 'utf8').catch(() => ''), hostname);
  if (fromHosts.length > 0) return fromHosts;
  signal.throwIfAborted();
  const resolver = new dns.Resolver();
  if (dnsServers !== undefined) resolver.setServers(dnsServers);
  const cancel = (): void => resolver.cancel();
  signal.addEventListener('abort', cancel, { once: true });
  try {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)]);
    signal.throwIfAborted();
    const found: LookupAddress[] = [
      ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 as const })) : []),
      ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 as const })) : []),
    ];
    if (found.length > 0) return found;
    throw v4.status === 'rejected' ? v4.reason : new Error(`${hostname} has no address`);
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

/** The addresses /etc/hosts gives `hostname` (names are case-insensitive), in the file's order. */
function hostsEntries(text: string, hostname: string): LookupAddress[] {
  const wanted = hostname.toLowerCase();
  const found: LookupAddress[] = [];
  for (const line of text.split('\n')) {
    const [address, ...names] = (line.split('#')[0] ?? '').trim().split(/\s+/);
    const family = address === undefined ? 0 : isIP(address);
    if (address === undefined || family === 0 || !names.some((n) => n.toLowerCase() === wanted)) continue;
    found.push({ address, family: family === 6 ? 6 : 4 });
  }
  return found;
}
