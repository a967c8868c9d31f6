import { lookupMethod, methodTable } from '../../src/chain/method-table';
import { imageRoles } from '../../src/interceptors/metrics/image-roles';
import { stringPathProblem } from '../support/field-paths';

describe('image roles of the metrics (a column of the method table)', () => {
  test('a pull, and the ImageStatus after it, each a method of the table', () => {
    expect(imageRoles.byName).toEqual({ PullImage: 'pull', ImageStatus: 'status' });
    for (const name of Object.keys(imageRoles.byName)) expect(methodTable.some((m) => m.name === name)).toBe(true);
  });

  test("the pull names its image in the request, and the status answer holds the image's size", () => {
    const pull = lookupMethod('/runtime.v1.ImageService/PullImage');
    const status = lookupMethod('/runtime.v1.ImageService/ImageStatus');
    expect(imageRoles.of(pull)).toBe('pull');
    expect(imageRoles.of(status)).toBe('status');
    expect(stringPathProblem(pull.requestType ?? '', pull.requestFields.image ?? '')).toBeUndefined();
    expect(stringPathProblem(status.responseType ?? '', 'image.id')).toBeUndefined();
    expect(stringPathProblem(status.responseType ?? '', 'image.size')).toMatch(/not a string/);
  });
});
