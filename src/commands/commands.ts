/**
 * The subcommands, by their words; the program with no subcommand runs the proxy. A command added here gets
 * `--help`, its line in the top-level help and its group's, and usage errors told the same way as every other.
 */
import { PROXY_HELP } from './args';
import { auditVerifyCommand } from './audit-verify';
import { configPrintCommand, configValidateCommand } from './config';
import { podsCommand } from './pods';
import { policyCheckCommand } from './policy-check';
import { policyVerifyCommand } from './policy-verify';
import { helpText, PROGRAM, type Command } from './usage';

export const commands: readonly Command[] = [
  configValidateCommand,
  configPrintCommand,
  policyCheckCommand,
  policyVerifyCommand,
  auditVerifyCommand,
  podsCommand(),
];

/** The commands whose first word is `group` (`config` → validate, print). */
export function commandsIn(group: string): Command[] {
  return commands.filter((c) => c.name.split(' ')[0] === group);
}

function commandList(list: readonly Command[]): string {
  const lines = list.map((c) => [`  ${PROGRAM} ${c.help.usage}`, c.help.summary] as const);
  return lines.map(([usage, summary]) => `${usage}\n      ${summary}`).join('\n');
}

/** `cri-proxy config --help`: the group's commands. */
export function groupHelp(group: string): string {
  return `Usage: ${PROGRAM} ${group} COMMAND ...

Commands:
${commandList(commandsIn(group))}

Each command has its own --help, with its options and exit status.
`;
}

/** `cri-proxy --help`: running the proxy, then every command. */
export function mainHelp(): string {
  return helpText({
    ...PROXY_HELP,
    more: `Commands (each has its own --help, with its options and exit status):\n${commandList(commands)}`,
  });
}
