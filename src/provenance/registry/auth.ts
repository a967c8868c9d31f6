/**
 * Registry credentials: docker `config.json` files (the node's own credentials) and the ones kubelet sends with
 * a pull, plus the `WWW-Authenticate` challenges of the distribution API's token flow.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_REGISTRY } from '../../policies/image-reference';
import { isRecord } from '../../values';

/** Credentials for one registry. Held in memory only; never logged, audited or written anywhere. */
export interface Credentials {
  readonly username?: string;
  readonly password?: string;
  /** An OAuth2 refresh token, exchanged at the token endpoint (docker's `identitytoken`). */
  readonly identityToken?: string;
  /** A bearer token sent as it is (docker's `registrytoken`). */
  readonly registryToken?: string;
}

/** Credentials per registry host (`docker.io`, `registry.corp.example`, `localhost:5000`). */
export type AuthFile = ReadonlyMap<string, Credentials>;

/** `https://index.docker.io/v1/`, `http://host:5000`, `host:5000/` → the registry host as images name it. */
export function registryKey(server: string): string {
  let host = server.trim().replace(/^[a-z]+:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash !== -1) host = host.slice(0, slash);
  host = host.toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DEFAULT_REGISTRY : host;
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** One `auths` entry or a CRI AuthConfig: `auth` is base64 of `user:password`. */
export function credentialsOf(entry: Readonly<Record<string, unknown>>): Credentials | undefined {
  const out: { -readonly [K in keyof Credentials]: Credentials[K] } = {};
  const auth = str(entry['auth']);
  if (auth !== undefined) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon === -1) throw new Error('an "auth" value must be base64 of user:password');
    out.username = decoded.slice(0, colon);
    out.password = decoded.slice(colon + 1);
  }
  const username = str(entry['username']);
  const password = str(entry['password']);
  if (username !== undefined) out.username = username;
  if (password !== undefined) out.password = password;
  const identity = str(entry['identitytoken']) ?? str(entry['identity_token']);
  const registry = str(entry['registrytoken']) ?? str(entry['registry_token']);
  if (identity !== undefined) out.identityToken = identity;
  if (registry !== undefined) out.registryToken = registry;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Parses a docker `config.json`; credential helpers (`credsStore`, `credHelpers`) are not run. Throws on a bad file. */
export function parseAuthFile(text: string): AuthFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (!isRecord(parsed)) throw new Error('not a docker config.json: expected an object');
  const auths = parsed['auths'] ?? {};
  if (!isRecord(auths)) throw new Error('"auths" must be an object');
  const out = new Map<string, Credentials>();
  for (const [server, entry] of Object.entries(auths)) {
    if (!isRecord(entry)) throw new Error(`auths["${server}"] must be an object`);
    let credentials: Credentials | undefined;
    try {
      credentials = credentialsOf(entry);
    } catch (err) {
      throw new Error(`auths["${server}"]: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (credentials !== undefined) out.set(registryKey(server), credentials);
  }
  return out;
}

export function readAuthFile(file: string): AuthFile {
  return parseAuthFile(readFileSync(file, 'utf8'));
}

/** A parsed `WWW-Authenticate` header: the scheme and its parameters. */
export interface Challenge {
  readonly scheme: 'bearer' | 'basic';
  readonly params: ReadonlyMap<string, string>;
}

/** Reads `Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`); undefined for anything else. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*(bearer|basic)\b\s*(.*)$/i.exec(header);
  if (match === null) return undefined;
  const scheme = (match[1] ?? '').toLowerCase() as Challenge['scheme'];
  const params = new Map<string, string>();
  const param = /([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (const found of (match[2] ?? '').matchAll(param)) {
    const key = (found[1] ?? '').toLowerCase();
    params.set(key, (found[2] ?? found[3] ?? '').replace(/\\(.)/g, '$1'));
  }
  return { scheme, params };
}
