/**
 * A small CRI client for trying cri-proxy by hand: `cri-call --socket PATH Method ['{"json": "request"}']`.
 * Prints the response as JSON (streams: one message per line). Stand-in for crictl, which Debian lacks.
 */
import { createCriClient } from '../harness/cri-client';

async function main(argv: readonly string[]): Promise<number> {
  const args = [...argv];
  let socket = '/run/cri-proxy/cri-proxy.sock';
  const at = args.indexOf('--socket');
  if (at >= 0) {
    socket = (args[at + 1] ?? '').replace(/^unix:\/\//, '');
    args.splice(at, 2);
  }
  const [method, json] = args;
  if (method === undefined || method === '--help') {
    process.stdout.write('usage: cri-call [--socket PATH] Method [\'{"json": "request"}\']\n');
    return method === undefined ? 2 : 0;
  }
  const request = json === undefined ? {} : (JSON.parse(json) as object);
  const client = createCriClient(socket);
  try {
    if (method.startsWith('Stream') || method === 'GetContainerEvents') {
      for await (const message of client.stream(method, request, { timeoutMs: 3_600_000 })) {
        process.stdout.write(`${JSON.stringify(message, bytesAsText)}\n`);
      }
    } else {
      process.stdout.write(`${JSON.stringify(await client.call(method, request), bytesAsText, 2)}\n`);
    }
    return 0;
  } catch (err) {
    const { code, details } = err as { code?: number; details?: string };
    process.stderr.write(`cri-call: ${method} failed: code ${code ?? '?'}: ${details ?? String(err)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** ExecSync's stdout/stderr are bytes: show them as text. */
function bytesAsText(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && (value as { type?: string }).type === 'Buffer') {
    return Buffer.from((value as { data: number[] }).data).toString();
  }
  return value;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cri-call: ${String(err)}\n`);
    process.exit(1);
  },
);
