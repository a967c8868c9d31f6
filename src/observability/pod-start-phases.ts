import { MethodColumn } from '../chain/method-table';

/** The phases of a pod start, each one CRI method. */
export type PodStartPhaseName = 'sandbox' | 'pull' | 'create' | 'start';

export const podStartPhases = new MethodColumn<PodStartPhaseName>({
  RunPodSandbox: 'sandbox',
  PullImage: 'pull',
  CreateContainer: 'create',
  StartContainer: 'start',
});
