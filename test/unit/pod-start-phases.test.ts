import { methodTable } from '../../src/chain/method-table';
import { podStartPhases } from '../../src/observability/pod-start-phases';
import { podStartPhaseNames } from '../../src/observability/pod-start-types';

describe('pod-start phases (a column of the method table)', () => {
  test('each phase is one method of the table, every phase has one', () => {
    const byPhase = Object.entries(podStartPhases.byName).map(([name, phase]) => [phase, name]);
    expect(byPhase.map(([phase]) => phase).sort()).toEqual([...podStartPhaseNames].sort());
    expect(Object.fromEntries(byPhase)).toEqual({
      sandbox: 'RunPodSandbox',
      pull: 'PullImage',
      create: 'CreateContainer',
      start: 'StartContainer',
    });
  });

  test('every phase is a unary, mutating call whose row names the pod or container the tracker follows', () => {
    for (const [name, phase] of Object.entries(podStartPhases.byName)) {
      const method = methodTable.find((m) => m.name === name);
      expect([name, method?.kind, method?.mutating]).toEqual([name, 'unary', true]);
      const fields = method?.requestFields ?? {};
      if (phase === 'start') expect(fields.containerId).toBeDefined();
      else expect(fields.podUid ?? fields.sandboxId).toBeDefined();
    }
  });
});
