import { isIPv4, isIPv6 } from 'node:net';
import { ProxyError } from '../errors';

/** Linux `sun_path` holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

function invalid(message: string): ProxyError {
  return new ProxyError('CONFIG_INVALID', message);
}

/**
 * The filesystem path of a unix socket address: `unix:///abs/path`, `unix:/abs/path` or `/abs/path`.
 * Only unix sockets are supported: kubelet and containerd talk over them, and a TCP endpoint
 * would expose the runtime API to the network.
 */
export function parseUnixAddress(address: string): string {
  if (address === '') throw invalid('address is empty; expected unix:///absolute/path or /absolute/path');
  let path: string;
  if (address.startsWith('unix://')) path = address.slice('unix://'.length);
  else if (address.startsWith('unix:')) path = address.slice('unix:'.length);
  else if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(address)) {
    throw invalid(`"${address}" is not a unix socket address; expected unix:///absolute/path or /absolute/path`);
  } else path = address;
  if (!path.startsWith('/')) {
    throw invalid(`"${address}" is not an absolute socket path; expected unix:///absolute/path or /absolute/path`);
  }
  if (path.includes('\0')) throw invalid(`"${address}" contains a NUL byte`);
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw invalid(`socket path "${path}" is ${bytes} bytes long; the limit is ${MAX_SOCKET_PATH_BYTES}`);
  }
  return path;
}

export interface HostPort {
  /** IPv4 address, IPv6 address without brackets, or hostname. */
  readonly host: string;
  /** 0 asks the OS for a free port. */
  readonly port: number;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `host:port` for a TCP listener: `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464`. */
export function parseHostPort(address: string): HostPort {
  const expected = 'expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464';
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]+)$/.exec(address);
  if (m === null) {
    const hint = (address.match(/:/g) ?? []).length > 1 ? ' (IPv6 addresses go in brackets)' : '';
    throw invalid(`"${address}" is not a valid listen address${hint}; ${expected}`);
  }
  const [, v6, other = '', portText = ''] = m;
  const port = Number(portText);
  if (portText.length > 5 || port > 65535) throw invalid(`port ${portText} in "${address}" is out of range 0..65535`);
  if (v6 !== undefined) {
    if (!isIPv6(v6)) throw invalid(`"${v6}" in "${address}" is not an IPv6 address`);
    return { host: v6, port };
  }
  // An empty host would mean "all interfaces" to some tools and "localhost" to others: make it explicit.
  if (other === '') throw invalid(`"${address}" has no host; use 0.0.0.0 or [::] to listen on all interfaces`);
  const numeric = /^[0-9.]+$/.test(other);
  if (numeric ? !isIPv4(other) : !HOSTNAME.test(other)) {
    throw invalid(`"${other}" in "${address}" is not a valid ${numeric ? 'IPv4 address' : 'hostname'}`);
  }
  return { host: other, port };
}

/**
 * A config value parsed once when the config is validated: what it means, and how it was written (what
 * messages and `config print` show; JSON and YAML render it as written).
 */
abstract class WrittenSetting {
  constructor(readonly written: string) {}

  toString(): string {
    return this.written;
  }

  toJSON(): string {
    return this.written;
  }
}

/** A unix socket address (`listen`, a backend's `endpoint`); throws a CONFIG_INVALID error when it is not one. */
export class UnixAddress extends WrittenSetting {
  readonly path: string;

  constructor(written: string) {
    super(written);
    this.path = parseUnixAddress(written);
    Object.freeze(this);
  }
}

/** `host:port` of a TCP listener, or "" for none (`http.listen`). */
export class TcpListenAddress extends WrittenSetting {
  readonly endpoint: HostPort | undefined;

  constructor(written: string) {
    super(written);
    this.endpoint = written === '' ? undefined : Object.freeze(parseHostPort(written));
    Object.freeze(this);
  }
}

/** The CRI socket's file mode, written as a quoted octal string (`"0660"`). */
export class SocketMode extends WrittenSetting {
  readonly mode: number;

  constructor(written: string) {
    super(written);
    if (!/^0?[0-7]{3}$/.test(written)) throw invalid('must be an octal mode such as "0660"');
    this.mode = Number.parseInt(written, 8);
    Object.freeze(this);
  }
}
