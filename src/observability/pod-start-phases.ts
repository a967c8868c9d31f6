import { MethodColumn, fieldPath } from '../chain/method-table';
import type { PodStartPhaseName } from '../chain/pod-start-records';

export const podStartPhases = new MethodColumn<PodStartPhaseName>({
  RunPodSandbox: 'sandbox',
  PullImage: 'pull',
  CreateContainer: 'create',
  StartContainer: 'start',
});

/** Where a pod start call names its image, preferred first: the name the user wrote wins over the ID kubelet resolved. */
export const podStartImages = new MethodColumn<readonly string[]>({
  PullImage: (m) => [fieldPath(m, 'image')],
  CreateContainer: (m) => ['config.image.user_specified_image', fieldPath(m, 'image')],
});

/** The answer that carries a pulled image's size: kubelet asks ImageStatus right after each pull. */
export const imageSizeAnswers = new MethodColumn<true>({ ImageStatus: true });
