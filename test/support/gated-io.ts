import { type AuditIo } from '../../src/audit/writer';
import { nodeIo } from '../../src/audit/file-io';

/** An audit io whose writes wait until `open()` is called; counts how many were attempted. */
export function gatedIo(): { io: Partial<AuditIo>; open: () => void; writes: () => number } {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let writes = 0;
  return {
    io: {
      write: async (fd, data) => {
        writes += 1;
        await gate;
        await nodeIo.write(fd, data);
      },
    },
    open: () => release(),
    writes: () => writes,
  };
}
