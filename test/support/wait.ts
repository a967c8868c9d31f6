/** Polls until `check` holds; fails the test after `timeoutMs`. A wait for a condition, not a sleep. */
export async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  await eventually(() => Promise.resolve(check()), timeoutMs);
}

/** Polls an async condition (metrics are read asynchronously, answers come over sockets) until it holds. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
