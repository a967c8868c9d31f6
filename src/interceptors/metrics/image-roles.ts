import { MethodColumn } from '../../chain/method-table';

/** A pull, or the ImageStatus kubelet sends after one (whose answer holds the pulled image's size). */
export type ImageRole = 'pull' | 'status';

export const imageRoles = new MethodColumn<ImageRole>({ PullImage: 'pull', ImageStatus: 'status' });
