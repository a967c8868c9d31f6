import { PollingSampling } from '../../src/interceptors/tracing/polling';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const MS = 1_000_000n;

describe('which polling calls get a span', () => {
  test("the caller's sampling decision wins over the ratio", () => {
    const never = new PollingSampling(0, 1000);
    const always = new PollingSampling(1, 1000);
    expect(never.tracedFromStart(`00-${TRACE}-${SPAN}-01`)).toBe(true);
    expect(always.tracedFromStart(`00-${TRACE}-${SPAN}-00`)).toBe(false);
    // Other flag bits than "sampled" do not count; a later version's extra fields are ignored.
    expect(never.tracedFromStart(`00-${TRACE}-${SPAN}-02`)).toBe(false);
    expect(never.tracedFromStart(`01-${TRACE}-${SPAN}-03-extra`)).toBe(true);
  });

  test('without a (valid) trace context, the ratio decides', () => {
    let draw = 0;
    const half = new PollingSampling(0.5, 1000, () => draw);
    draw = 0.49;
    expect(half.tracedFromStart(undefined)).toBe(true);
    draw = 0.5;
    expect(half.tracedFromStart(undefined)).toBe(false);
    expect(half.tracedFromStart('not a traceparent')).toBe(false);
    expect(new PollingSampling(0, 1000, () => 0).tracedFromStart(undefined)).toBe(false);
    expect(new PollingSampling(1, 1000, () => 0.999).tracedFromStart(undefined)).toBe(true);
  });

  test('a call left out gets a late span when it failed or took slowCallMs or longer', () => {
    const sampling = new PollingSampling(0, 250);
    expect(sampling.worthLateSpan(0, 249n * MS)).toBe(false);
    expect(sampling.worthLateSpan(0, 250n * MS)).toBe(true);
    expect(sampling.worthLateSpan(14, 1n)).toBe(true);
  });
});
