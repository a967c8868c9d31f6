import { createHash } from 'node:crypto';
import type { AdminResponse } from './admin-server';
import { PODS_PAGE_SCRIPT } from './pods-page-script';
import { PODS_PAGE_STYLE } from './pods-page-style';

/*
 * `GET /pods`: one self-contained page (nodes are often offline: no CDN, no font, no image): its markup here, its
 * style and script inline, and a content security policy that lets only those two run.
 */

const BODY = `<a class="skip" href="#starts">Skip to the pod starts</a>
<header>
  <div><h1>Pod starts</h1><p class="sub">on this node, as cri-proxy saw the CRI calls</p></div>
  <section class="node" aria-labelledby="node-h">
    <h2 id="node-h">Node, last hour</h2>
    <dl>
      <div><dt>p50</dt><dd id="p50Ms">–</dd></div>
      <div><dt>p90</dt><dd id="p90Ms">–</dd></div>
      <div><dt>p99</dt><dd id="p99Ms">–</dd></div>
      <div><dt>pod starts</dt><dd id="count">–</dd></div>
    </dl>
  </section>
</header>
<main>
  <form id="filters" role="search" aria-label="Filter pod starts">
    <label>Order <select name="sort"><option value="slowest">Slowest first</option><option value="newest">Newest first</option></select></label>
    <label>Namespace <select name="namespace"><option value="">All namespaces</option></select></label>
    <label>Minimum duration <input type="text" name="min" placeholder="e.g. 5s" size="9" autocomplete="off" spellcheck="false"></label>
    <label class="check"><input type="checkbox" name="refresh" checked> Refresh every 5 s</label>
    <button type="submit">Apply</button>
  </form>
  <p id="status" role="status" aria-live="polite">Loading…</p>
  <ul class="legend" id="legend" aria-label="Legend"></ul>
  <table id="starts" tabindex="-1">
    <caption id="caption">Pod starts</caption>
    <thead><tr><th scope="col">Pod</th><th scope="col" class="num">Total</th><th scope="col" class="wf">Waterfall</th><th scope="col">Took longest</th><th scope="col">Result</th><th scope="col" class="num">Finished</th></tr></thead>
    <tbody id="rows"></tbody>
  </table>
  <p id="empty" hidden>No pod starts match these filters yet.</p>
  <noscript><p>This page draws with JavaScript; the same data is at <a href="api/pods">api/pods</a>.</p></noscript>
</main>
<footer>Shows pod names, namespaces, images, timings and error messages only. The same data as JSON: <a href="api/pods?sort=slowest">api/pods</a>.</footer>`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pod starts · cri-proxy</title>
<link rel="icon" href="data:,">
<style>${PODS_PAGE_STYLE}</style>
</head>
<body>
${BODY}
<script>${PODS_PAGE_SCRIPT}</script>
</body>
</html>
`;

// Only this page's own script and style run; it may fetch from its own origin and nothing else.
const POLICY = [
  "default-src 'none'",
  `script-src ${sha256(PODS_PAGE_SCRIPT)}`,
  `style-src ${sha256(PODS_PAGE_STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** The `/pods` route. */
export function podsPage(): AdminResponse {
  return {
    status: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': POLICY,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    },
    body: PAGE,
  };
}
