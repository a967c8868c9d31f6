import { methodTable } from '../../src/chain/method-table';
import type { WatchedCall } from '../../src/observability/pod-start-feed';
import { testPodStarts } from '../support/pod-starts';

describe('pod start feed', () => {
  test('wraps only the pod start methods and ImageStatus; every other method runs as it is', () => {
    const { feed, subscribers } = testPodStarts();
    const observer = feed.observer(subscribers);
    const watched = methodTable.filter((m) => observer.around(m) !== undefined).map((m) => m.name);
    expect(watched.sort()).toEqual(['CreateContainer', 'ImageStatus', 'PullImage', 'RunPodSandbox', 'StartContainer']);
    feed.close();
  });

  test('with no store and no listener it watches nothing', () => {
    const { feed, subscribers } = testPodStarts({ store: false });
    expect(methodTable.filter((m) => feed.observer(subscribers).around(m) !== undefined)).toEqual([]);
    subscribers.subscribe(() => undefined);
    expect(methodTable.filter((m) => feed.observer(subscribers).around(m) !== undefined)).toHaveLength(5);
    feed.close();
  });

  test('ImageStatus is passed straight on, unread, while no pulled image waits for its size', async () => {
    const { feed, subscribers } = testPodStarts();
    const imageStatus = methodTable.find((m) => m.name === 'ImageStatus');
    const around = imageStatus && feed.observer(subscribers).around(imageStatus);
    const untouchable: WatchedCall = new Proxy(Object.create(null) as WatchedCall, {
      get: () => {
        throw new Error('the call was read');
      },
    });
    let ran = 0;
    await around?.(untouchable, () => {
      ran++;
      return Promise.resolve();
    });
    expect(ran).toBe(1);
    feed.close();
  });
});
