/** Progress lines go to stderr, so stdout holds only the report and the BENCH_RESULT line. */
export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}
