import { isRecord } from '../values';

/**
 * Entries of a list whose `name` repeats an earlier entry's, each with its message: rules are named in denials,
 * metrics and logs, so a name must say which one. Reads the list as written (entries may be invalid otherwise).
 */
export function duplicateNames(list: readonly unknown[], what: string): { readonly index: number; readonly message: string }[] {
  const seen = new Map<string, number>();
  const found: { index: number; message: string }[] = [];
  list.forEach((entry, index) => {
    const name = isRecord(entry) ? entry.name : undefined;
    if (typeof name !== 'string') return;
    const first = seen.get(name);
    if (first === undefined) seen.set(name, index);
    else found.push({ index, message: `duplicate ${what} name "${name}" (also ${what}s[${first}])` });
  });
  return found;
}
