import { MethodColumn, fieldPath } from '../../chain/method-table';

/** Where the image policy checks a call: the door it guards, and where in the request the image and namespace lie. */
export interface ImageCheck {
  readonly door: 'pull' | 'create';
  /** Field paths of the image, preferred first: the name the user wrote wins over the ID kubelet resolved. */
  readonly imagePaths: readonly string[];
  readonly namespacePath: string;
}

/** The doors through which an image reaches a node, by method; the image and namespace where the table has them. */
export const imageDoors = new MethodColumn<ImageCheck>({
  PullImage: (m) => ({ door: 'pull', imagePaths: [fieldPath(m, 'image')], namespacePath: fieldPath(m, 'podNamespace') }),
  CreateContainer: (m) => ({
    door: 'create',
    imagePaths: ['config.image.user_specified_image', fieldPath(m, 'image')],
    namespacePath: fieldPath(m, 'podNamespace'),
  }),
});
