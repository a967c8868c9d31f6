import * as protobuf from 'protobufjs';
import { methodTable } from '../../src/chain/method-table';
import { imageDoors } from '../../src/interceptors/image-policy/doors';
import { imagesAtDoor } from '../../src/interceptors/image-policy/images-at-door';
import { loadSchema, walkFields } from '../support/schema-walk';
import { stringPathProblem } from '../support/field-paths';

/** Message types whose presence in a request means an image reaches the node, or a container is made. */
const CARRIERS = new Set(['runtime.v1.ImageSpec', 'runtime.v1.ContainerConfig']);

/** Request fields that carry an image and pass no door, each with the reason it needs none. */
const EXEMPT: Readonly<Record<string, string>> = {
  'ImageStatus: image': 'a read: asks whether an image is on the node and what it is called',
  'ListImages: filter.image': 'a read: narrows a list of images already on the node',
  'StreamImages: filter.image': 'a read: narrows a list of images already on the node',
  'RemoveImage: image': 'removes an image; nothing runs from it',
};

/** Every place a request of the schema carries an image or a container config, as `Method: path`. */
function carriers(root: protobuf.Root): string[] {
  return methodTable.flatMap((m) => {
    const type = root.lookupType(m.requestType ?? '');
    // An ImageSpec holds no further image; a ContainerConfig does (its own and its mounts').
    const walked = walkFields(type, (f) => f.type?.fullName !== '.runtime.v1.ImageSpec');
    return walked.filter((f) => CARRIERS.has(f.type?.fullName.slice(1) ?? '')).map((f) => `${m.name}: ${f.path}`);
  });
}

/** What the door table checks, as `Method: path`: container configs and image sites. */
const checked = Object.entries(imageDoors.byName).flatMap(([name, door]) =>
  [...door.containers, ...door.sites.map((s) => s.path)].map((path) => `${name}: ${path}`),
);

/** Carriers that are neither checked at a door nor exempt. */
function unguarded(root: protobuf.Root): string[] {
  return carriers(root).filter((c) => !checked.includes(c) && !Object.hasOwn(EXEMPT, c));
}

describe('image policy doors (a column of the method table)', () => {
  const doors = Object.entries(imageDoors.byName);

  test('a rule, not a list: every request field carrying an image or a container config is checked or exempt with its reason', () => {
    expect(unguarded(loadSchema())).toEqual([]);
    // Nothing stale either: every door path and exemption names a carrier of the schema.
    const found = carriers(loadSchema());
    expect(checked.filter((c) => !found.includes(c))).toEqual([]);
    expect(Object.keys(EXEMPT).filter((c) => !found.includes(c))).toEqual([]);
    expect(checked.filter((c) => Object.hasOwn(EXEMPT, c))).toEqual([]);
  });

  test('a rule, not a list: the next CRI field that carries an image fails the walk', () => {
    const root = loadSchema();
    root.lookupType('runtime.v1.Mount').add(new protobuf.Field('overlay_image', 90, 'ImageSpec'));
    root.lookupType('runtime.v1.UpdateContainerResourcesRequest').add(new protobuf.Field('config', 91, 'ContainerConfig'));
    root.resolveAll();
    expect(unguarded(root).sort()).toEqual(
      [
        'CreateContainer: config.mounts[].overlay_image',
        'RestorePod: container_configs[].mounts[].overlay_image',
        'UpdateContainerResources: config',
        'UpdateContainerResources: config.image',
        'UpdateContainerResources: config.mounts[].image',
        'UpdateContainerResources: config.mounts[].overlay_image',
      ].sort(),
    );
  });

  test('guard the pull, the container create and the pod restore, each a mutating method of the table', () => {
    expect(Object.fromEntries(doors.map(([name, door]) => [name, door.door]))).toEqual({
      PullImage: 'pull',
      CreateContainer: 'create',
      RestorePod: 'restore',
    });
    for (const [name] of doors) expect(methodTable.find((m) => m.name === name)?.mutating).toBe(true);
  });

  test.each(doors)('%s: the namespace path is the table one; image names are read from string fields of ImageSpec', (name, door) => {
    const method = methodTable.find((m) => m.name === name);
    expect(door.namespacePath).toBe(method?.requestFields.podNamespace);
    expect([door.namespacePath, stringPathProblem(method?.requestType ?? '', door.namespacePath)]).toEqual([door.namespacePath, undefined]);
    for (const site of door.sites) {
      expect(site.nameFields.length).toBeGreaterThan(0);
      for (const field of site.nameFields) expect(stringPathProblem('runtime.v1.ImageSpec', field)).toBeUndefined();
      // What the user wrote comes before what kubelet resolved; a pull decides what it fetches.
      expect(site.nameFields.at(-1)).toBe('image');
    }
  });

  test('the container image path of CreateContainer is the table one', () => {
    const create = methodTable.find((m) => m.name === 'CreateContainer');
    const site = imageDoors.byName.CreateContainer?.sites.find((s) => s.noun === 'image');
    expect(`${site?.path ?? ''}.image`).toBe(create?.requestFields.image);
  });
});

describe('images at a door', () => {
  const create = imageDoors.byName.CreateContainer;
  const restore = imageDoors.byName.RestorePod;
  const pull = imageDoors.byName.PullImage;
  if (create === undefined || restore === undefined || pull === undefined) throw new Error('a door is missing');

  test('CreateContainer: the container image (the name the user wrote first, with the ID beside it) and each image volume, host mounts skipped', () => {
    const [aa, bb] = [`sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`];
    const request = {
      config: {
        image: { image: aa, user_specified_image: 'busybox:1' },
        mounts: [
          { container_path: '/host', host_path: '/var' },
          { container_path: '/data', image: { image: bb } },
          { container_path: '/empty', image: {} },
          { container_path: '/named', image: { image: 'busybox:2' } },
        ],
      },
    };
    expect(imagesAtDoor(create, request)).toStrictEqual([
      { image: 'busybox:1', id: aa, at: 'config.image', noun: 'image', showAt: false },
      { image: bb, id: bb, at: 'config.mounts[1].image', noun: 'image volume', showAt: true },
      { image: 'busybox:2', id: undefined, at: 'config.mounts[3].image', noun: 'image volume', showAt: true },
    ]);
  });

  test('a container without an image names "" (decided as malformed); a request without a config names nothing', () => {
    expect(imagesAtDoor(create, { config: { metadata: { name: 'c' } } })).toEqual([
      { image: '', at: 'config.image', noun: 'image', showAt: false },
    ]);
    expect(imagesAtDoor(create, {})).toEqual([]);
    expect(imagesAtDoor(pull, {})).toEqual([{ image: '', at: 'image', noun: 'image', showAt: false }]);
  });

  test('RestorePod: each container config, its image and its image volumes, with where each lies', () => {
    const request = {
      container_configs: [
        { image: { image: 'a:1' } },
        { image: { image: 'b:1' }, mounts: [{ container_path: '/m', image: { user_specified_image: 'c:1', image: 'sha256:cc' } }] },
      ],
    };
    expect(imagesAtDoor(restore, request)).toEqual([
      { image: 'a:1', at: 'container_configs[0].image', noun: 'image', showAt: true },
      { image: 'b:1', at: 'container_configs[1].image', noun: 'image', showAt: true },
      { image: 'c:1', at: 'container_configs[1].mounts[0].image', noun: 'image volume', showAt: true },
    ]);
    expect(imagesAtDoor(restore, { checkpoint_path: '/x' })).toEqual([]);
  });

  test('a pull decides the image it fetches, not the name it says the user wrote', () => {
    expect(imagesAtDoor(pull, { image: { image: 'evil.example/x:1', user_specified_image: 'busybox:1' } })).toEqual([
      { image: 'evil.example/x:1', at: 'image', noun: 'image', showAt: false },
    ]);
  });
});
