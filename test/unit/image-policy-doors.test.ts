import { methodTable } from '../../src/chain/method-table';
import { imageDoors } from '../../src/interceptors/image-policy/doors';
import { stringPathProblem } from '../support/field-paths';

describe('image policy doors (a column of the method table)', () => {
  const doors = Object.entries(imageDoors.byName);

  test('guard the pull and the container create, each a method of the table', () => {
    expect(Object.fromEntries(doors.map(([name, check]) => [name, check.door]))).toEqual({ PullImage: 'pull', CreateContainer: 'create' });
    for (const [name] of doors) expect(methodTable.some((m) => m.name === name)).toBe(true);
  });

  test.each(doors)('%s: the image and namespace paths reach string fields of the request, the table paths among them', (name, check) => {
    const method = methodTable.find((m) => m.name === name);
    const requestType = method?.requestType ?? '';
    expect(check.imagePaths.length).toBeGreaterThan(0);
    for (const path of [...check.imagePaths, check.namespacePath])
      expect([path, stringPathProblem(requestType, path)]).toEqual([path, undefined]);
    expect(check.imagePaths).toContain(method?.requestFields.image);
    expect(check.namespacePath).toBe(method?.requestFields.podNamespace);
    // What the user wrote comes before what kubelet resolved.
    expect(check.imagePaths.at(-1)).toBe(method?.requestFields.image);
  });

  test('every call through a door is mutating: reads never pass one', () => {
    for (const [name] of doors) expect(methodTable.find((m) => m.name === name)?.mutating).toBe(true);
  });
});
