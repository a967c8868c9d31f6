/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The `/pods` page in a real browser: Debian's Chromium, driven by playwright-core, loads the page from a running
 * proxy that has seen pod starts of realistic shapes (through its CRI socket, from a fake runtime), and checks
 * what a person sees: the rows, the filters, the waterfall bars' order and proportions, keyboard use, a phone's
 * screen, refresh. Screenshots go to test/e2e/output/pods-page/; with CRI_PROXY_UPDATE_SCREENSHOTS=1 the
 * desktop one also replaces docs/images/pods.png.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Registry } from 'prom-client';
import { App } from '../../src/app';
import { silentLogger } from '../../src/log';
import type { PodStartsAnswer } from '../../src/observability/pod-starts-api';
import { appConfig } from '../support/app-config';
import { FakeRuntime } from '../support/fake-runtime';
import { startPod, type PodSpec } from '../support/kubelet';
import { RawClient, makeTempDir } from '../support/proxy-harness';
import { eventually } from '../support/wait';

jest.setTimeout(120_000);

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = path.join(__dirname, 'output', 'pods-page');
const REPO = path.join(__dirname, '..', '..');
// As the machine's own probe starts it: no sandbox as root, and nothing that reaches for the network.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const MB = 1_000_000;
/** Pod starts a node sees in a morning, at about a tenth of their real times. */
const PODS: readonly PodSpec[] = [
  {
    uid: '0b6c2d0e-checkout',
    name: 'checkout-7d9c6-x2x9q',
    namespace: 'shop',
    handler: 'runc',
    sandboxMs: 180,
    kubeletMs: 120,
    containers: [
      { name: 'app', image: 'registry.example.com/shop/checkout:2.14.1', pullMs: 1400, pullBytes: 67 * MB, createMs: 40, startMs: 60 },
      { name: 'envoy', image: 'docker.io/envoyproxy/envoy:v1.30.2', createMs: 30, startMs: 50 },
    ],
  },
  {
    uid: '1c7d3e1f-cart',
    name: 'cart-5f8b9-kq7wz',
    namespace: 'shop',
    sandboxMs: 150,
    kubeletMs: 40,
    containers: [{ name: 'app', image: 'registry.example.com/shop/cart:1.9.0', createMs: 35, startMs: 45 }],
  },
  {
    uid: '2d8e4f20-coredns',
    name: 'coredns-76f75-9gq2k',
    namespace: 'kube-system',
    sandboxMs: 900,
    kubeletMs: 30,
    containers: [{ name: 'coredns', image: 'registry.k8s.io/coredns/coredns:v1.11.1', createMs: 30, startMs: 40 }],
  },
  {
    uid: '3e9f5031-report',
    name: 'nightly-report-28731-hx4kz',
    namespace: 'batch',
    sandboxMs: 160,
    kubeletMs: 60,
    containers: [
      { name: 'report', image: 'registry.example.com/data/report:2025.01', pullMs: 2200, pullBytes: 412 * MB, createMs: 50, startMs: 70 },
    ],
  },
  {
    uid: '4fa06142-migrate',
    name: 'migrate-db-q8w2n',
    namespace: 'batch',
    sandboxMs: 170,
    kubeletMs: 50,
    containers: [
      {
        name: 'migrate',
        image: 'registry.example.com/data/migrate:5.2',
        createMs: 40,
        startMs: 700,
        failStart: { code: grpc.status.DEADLINE_EXCEEDED, message: 'context deadline exceeded' },
      },
    ],
  },
  {
    uid: '50b17253-exporter',
    name: 'node-exporter-zt5fk',
    namespace: 'monitoring',
    sandboxMs: 120,
    kubeletMs: 600,
    containers: [{ name: 'node-exporter', image: 'quay.io/prometheus/node-exporter:v1.8.1', createMs: 30, startMs: 40 }],
  },
  {
    uid: '61c28364-frontend',
    name: 'frontend-6c9f8-lm2rd',
    namespace: 'shop',
    sandboxMs: 260,
    failSandbox: {
      code: grpc.status.UNKNOWN,
      message:
        'failed to setup network for sandbox: plugin type="bridge" failed (add): failed to allocate for range 0: no IP addresses available in range set',
    },
    containers: [],
  },
];

interface Bar {
  readonly part: string;
  readonly offsetMs: number;
  readonly durationMs: number;
  readonly x: number;
  readonly width: number;
  readonly dominant: boolean;
}

describe('the /pods page in Chromium', () => {
  let dir: string;
  let runtime: FakeRuntime;
  let app: App;
  let client: RawClient;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install-e2e-deps.sh (Debian's chromium)`);
    rmSync(OUTPUT, { recursive: true, force: true });
    mkdirSync(OUTPUT, { recursive: true });
    dir = makeTempDir();
    runtime = new FakeRuntime(path.join(dir, 'runtime.sock'));
    await runtime.start();
    app = await App.start(appConfig(dir, runtime, { podStarts: { settleMs: 1000 } }), { log: silentLogger, registry: new Registry() });
    client = new RawClient(`unix:${app.socketPath}`);
    base = `http://${app.adminAddress ?? ''}`;
    for (const pod of PODS) await startPod(client, runtime, pod);
    await eventually(async () => (await api()).matched === PODS.length);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser.close();
    client.close();
    await app.stop(0);
    await runtime.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function api(query = 'sort=slowest'): Promise<PodStartsAnswer> {
    return (await (await fetch(`${base}/api/pods?${query}`)).json()) as PodStartsAnswer;
  }

  /** A fresh page at `/pods?query`, once it has drawn its first answer; every request it makes is recorded. */
  async function open(query = '', viewport = { width: 1280, height: 800 }): Promise<{ page: Page; requests: string[] }> {
    const page = await browser.newPage({ viewport });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`${base}/pods${query}`);
    await page.waitForFunction(() => Number(document.body.dataset.loaded ?? '0') >= 1);
    return { page, requests };
  }

  const rowNames = (page: Page): Promise<string[]> => page.$$eval('tr.pod .expand', (els) => els.map((e) => e.textContent ?? ''));

  async function barsOf(page: Page, name: string): Promise<{ bars: Bar[]; trackX: number; trackWidth: number }> {
    return page.evaluate((pod) => {
      const row = [...document.querySelectorAll('tr.pod')].find((r) => r.querySelector('.expand')?.textContent === pod);
      const track = row?.querySelector('.track');
      if (!track) throw new Error(`no row for ${pod}`);
      const box = track.getBoundingClientRect();
      const bars = [...track.querySelectorAll<HTMLElement>('.bar')].map((b) => {
        const r = b.getBoundingClientRect();
        return {
          part: b.dataset.part ?? '',
          offsetMs: Number(b.dataset.offsetMs),
          durationMs: Number(b.dataset.durationMs),
          x: r.left,
          width: r.width,
          dominant: b.classList.contains('dom'),
        };
      });
      return { bars, trackX: box.left, trackWidth: box.width };
    }, name);
  }

  test('one row per pod start, slowest first, each with its dominant part and result', async () => {
    const { page, requests } = await open();
    const expected = await api();
    expect(await rowNames(page)).toEqual(expected.podStarts.map((s) => s.name));
    const totals = await page.$$eval('tr.pod', (rows) => rows.map((r) => Number((r as HTMLElement).dataset.totalMs)));
    expect([...totals].sort((a, b) => b - a)).toEqual(totals);
    const dominant = await page.$$eval('tr.pod .dominant .tag', (tags) => tags.map((t) => t.textContent));
    expect(dominant).toEqual(expected.podStarts.map((s) => s.dominant));
    const results = await page.$$eval('tr.pod', (rows) => rows.map((r) => r.querySelector('td[data-label="Result"]')?.textContent));
    expect(results).toContain('failed: DEADLINE_EXCEEDED');
    expect(results).toContain('failed: UNKNOWN');
    expect(await page.textContent('#p50Ms')).toMatch(/\d/);
    // Self-contained: nothing is fetched from anywhere but the proxy.
    expect(requests.filter((u) => !u.startsWith(base) && !u.startsWith('data:'))).toEqual([]);
    await page.screenshot({ path: path.join(OUTPUT, 'pods-desktop.png'), fullPage: true });
    if (process.env.CRI_PROXY_UPDATE_SCREENSHOTS === '1')
      copyFileSync(path.join(OUTPUT, 'pods-desktop.png'), path.join(REPO, 'docs', 'images', 'pods.png'));
    await page.close();
  });

  test("the waterfall's bars are in call order, placed and sized in proportion to their times", async () => {
    const { page } = await open();
    const answer = await api();
    const scale = Math.max(...answer.podStarts.map((s) => s.totalMs));
    const checkout = answer.podStarts.find((s) => s.name === 'checkout-7d9c6-x2x9q');
    const { bars, trackX, trackWidth } = await barsOf(page, 'checkout-7d9c6-x2x9q');
    // The calls, and kubelet's time between them, in the order they happened.
    expect(bars.filter((b) => b.part !== 'kubelet').map((b) => b.part)).toEqual(['sandbox', 'pull', 'create', 'start', 'create', 'start']);
    expect(bars.map((b) => b.offsetMs)).toEqual([...bars.map((b) => b.offsetMs)].sort((a, b) => a - b));
    for (let i = 1; i < bars.length; i++) expect(bars[i]?.x).toBeGreaterThanOrEqual((bars[i - 1]?.x ?? 0) - 0.5);
    for (const bar of bars) {
      expect(Math.abs(bar.x - trackX - (bar.offsetMs / scale) * trackWidth)).toBeLessThan(1.5);
      // Bars are at least 2 px wide so that the shortest calls still show.
      expect(Math.abs(bar.width - Math.max(2, (bar.durationMs / scale) * trackWidth))).toBeLessThan(1.5);
    }
    // The pull took longest: its bar is the widest and outlined as the dominant part.
    const pull = bars.find((b) => b.part === 'pull');
    expect(checkout?.dominant).toBe('pull');
    expect(pull?.dominant).toBe(true);
    expect(Math.max(...bars.map((b) => b.width))).toBe(pull?.width);
    expect(bars.filter((b) => b.dominant).every((b) => b.part === 'pull')).toBe(true);
    await page.close();
  });

  test('filters: namespace, minimum duration and order, kept in the address', async () => {
    const { page } = await open();
    await page.selectOption('select[name=namespace]', 'batch');
    await page.waitForFunction(() =>
      [...document.querySelectorAll('tr.pod')].every((r) => (r as HTMLElement).dataset.namespace === 'batch'),
    );
    expect(await rowNames(page)).toEqual(['nightly-report-28731-hx4kz', 'migrate-db-q8w2n']);
    expect(page.url()).toContain('namespace=batch');
    await page.selectOption('select[name=namespace]', '');
    await page.fill('input[name=min]', '1s');
    await page.press('input[name=min]', 'Enter');
    await page.waitForFunction(() =>
      [...document.querySelectorAll('tr.pod')].every((r) => Number((r as HTMLElement).dataset.totalMs) >= 1000),
    );
    const slow = (await api('sort=slowest&min=1s')).podStarts.map((s) => s.name);
    expect(await rowNames(page)).toEqual(slow);
    await page.fill('input[name=min]', '');
    await page.selectOption('select[name=sort]', 'newest');
    const newest = (await api('sort=newest')).podStarts.map((s) => s.name);
    await page.waitForFunction((first) => document.querySelector('tr.pod .expand')?.textContent === first, newest[0]);
    expect(await rowNames(page)).toEqual(newest);
    expect(page.url()).toContain('sort=newest');
    await page.close();
  });

  test('keyboard: Tab reaches the controls and each pod; Enter opens its phases', async () => {
    const { page } = await open('?namespace=shop');
    const focused: string[] = [];
    for (let i = 0; i < 12 && !focused.includes('expand'); i++) {
      await page.keyboard.press('Tab');
      focused.push(
        await page.evaluate(
          () => (document.activeElement as HTMLElement).getAttribute('name') ?? (document.activeElement as HTMLElement).className,
        ),
      );
    }
    expect(focused).toEqual(expect.arrayContaining(['sort', 'namespace', 'min', 'refresh', 'expand']));
    await page.keyboard.press('Enter');
    const open_ = await page.evaluate(() => {
      const button = document.activeElement as HTMLElement;
      const details = document.getElementById(button.getAttribute('aria-controls') ?? '');
      return { expanded: button.getAttribute('aria-expanded'), hidden: details?.hidden, text: details?.textContent ?? '' };
    });
    expect(open_).toMatchObject({ expanded: 'true', hidden: false });
    expect(open_.text).toContain('UID');
    await page.close();
  });

  test('text has enough contrast against what is behind it (WCAG AA, 4.5:1)', async () => {
    const { page } = await open();
    const ratios = await page.evaluate(() => {
      const rgb = (c: string): number[] => (c.match(/[\d.]+/g) ?? []).map(Number);
      const lum = (c: string): number => {
        const [r = 0, g = 0, b = 0] = rgb(c)
          .map((v) => v / 255)
          .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      const background = (el: Element | null): string => {
        for (let e = el; e; e = e.parentElement) {
          const bg = getComputedStyle(e).backgroundColor;
          if (rgb(bg)[3] !== 0 && bg !== 'transparent') return bg;
        }
        return 'rgb(255, 255, 255)';
      };
      const out: [string, number][] = [];
      for (const sel of [
        'h1',
        '.sub',
        'thead th',
        '.expand',
        '.ns',
        '#status',
        '.tag',
        '.share',
        'td.failed',
        'label',
        'footer',
        '.node dt',
      ]) {
        for (const el of document.querySelectorAll(sel)) {
          const [a, b] = [lum(getComputedStyle(el).color), lum(background(el))];
          out.push([sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
        }
      }
      return out;
    });
    expect(ratios.length).toBeGreaterThan(20);
    expect(ratios.filter(([, ratio]) => ratio < 4.5)).toEqual([]);
    await page.close();
  });

  test('on a phone: one column, no sideways scrolling, the waterfall across the screen', async () => {
    const { page } = await open('', { width: 390, height: 844 });
    const layout = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      width: window.innerWidth,
      track: document.querySelector('.track')?.getBoundingClientRect().width ?? 0,
      detailsShown: [...document.querySelectorAll<HTMLElement>('tr.details')].filter((d) => d.offsetParent !== null).length,
    }));
    // Each pod's phases stay folded until asked for.
    expect(layout.detailsShown).toBe(0);
    expect(layout.scrollWidth).toBeLessThanOrEqual(layout.width);
    expect(layout.track).toBeGreaterThan(layout.width * 0.7);
    await page.screenshot({ path: path.join(OUTPUT, 'pods-phone.png'), fullPage: true });
    await page.close();
  });

  test('it refreshes by itself: a pod start that finishes later appears without a reload', async () => {
    const { page } = await open('?sort=newest');
    await startPod(client, runtime, {
      uid: '72d39475-late',
      name: 'late-arrival-1',
      namespace: 'shop',
      containers: [{ name: 'app', image: 'registry.example.com/shop/cart:1.9.0' }],
    });
    await page.waitForFunction(() => document.querySelector('tr.pod .expand')?.textContent === 'late-arrival-1', undefined, {
      timeout: 30_000,
    });
    await page.close();
  });
});
