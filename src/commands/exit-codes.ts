/**
 * The exit status of every cri-proxy command, one table for all of them (documented in the README, which a test
 * checks against this table). Scripts and systemd units can rely on these numbers.
 */
export const ExitCode = {
  OK: 0,
  CHECK_FAILED: 1,
  USAGE: 2,
  INPUT_INVALID: 3,
  START_FAILED: 4,
  FAILED: 5,
} as const;

export type ExitCodeName = keyof typeof ExitCode;

export const exitCodeMeaning: Readonly<Record<ExitCodeName, string>> = {
  OK: 'success; for a check: nothing wrong was found',
  CHECK_FAILED:
    'a check found a problem: `config validate` an invalid configuration, `policy check` an image that would be denied, `policy verify` an image whose signature does not verify, `audit verify` a broken or cut chain',
  USAGE: 'the command line is wrong (unknown option, missing argument)',
  INPUT_INVALID:
    'a file the command needs is unreadable or invalid: the configuration (of the proxy, `config print`, `policy check`, `policy verify`, `pods`), the key files or trusted root of `policy verify`, the log files or key file of `audit verify`',
  START_FAILED:
    'the proxy could not start: a listener could not be opened (address in use, socket directory not creatable, another proxy on the socket)',
  FAILED:
    'the proxy failed while running, or did not stop cleanly; `pods`: the admin listener could not be reached or answered with an error',
};

/** What each code means for one command, for its help; the README's table holds the meanings for all. */
export type ExitStatus = Readonly<Partial<Record<ExitCodeName, string>>>;

/** A command's exit codes as help text, in the order of their numbers. */
export function exitCodesHelp(status: ExitStatus): string {
  const names = (Object.keys(ExitCode) as ExitCodeName[]).filter((name) => status[name] !== undefined);
  const lines = names.map((name) => `  ${ExitCode[name]}  ${status[name] ?? ''}`);
  return `Exit status:\n${lines.join('\n')}\n`;
}
