import { createHash } from 'node:crypto';
import type { AdminResponse } from './admin-server';

/*
 * `GET /pods`: one self-contained page (nodes are often offline: no CDN, no font, no image), which reads
 * `api/pods` with the page's own query and draws a waterfall per pod start. Everything it shows comes from the
 * JSON and is put in the page as text, never as markup.
 */

const STYLE = `
:root { --fg: #1b1b1b; --muted: #4d4d4d; --bg: #ffffff; --panel: #f3f4f6; --line: #c9ccd1; --focus: #1a4fd6;
  --sandbox: #0068a8; --pull: #c2410c; --create: #047857; --start: #9d3f82; --kubelet: #6b6b6b; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--focus); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -9999px; }
.skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 6px 10px; z-index: 2; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
header, main, footer { padding: 12px 20px; }
header { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-end; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: .8rem; margin: 0 0 2px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.sub { margin: 0; color: var(--muted); }
.node dl { display: flex; gap: 18px; margin: 0; }
.node dt { font-size: .8rem; color: var(--muted); }
.node dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
form { display: flex; flex-wrap: wrap; gap: 10px 18px; align-items: flex-end; margin-bottom: 8px; }
label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); gap: 2px; }
label.check { flex-direction: row; align-items: center; gap: 6px; color: var(--fg); }
select, input, button { font: inherit; color: var(--fg); }
select, input[type=text] { padding: 5px 8px; border: 1px solid #767676; border-radius: 4px; background: var(--bg); min-height: 34px; }
button { padding: 5px 12px; border: 1px solid #767676; border-radius: 4px; background: var(--panel); min-height: 34px; cursor: pointer; }
#status { margin: 4px 0 8px; color: var(--muted); }
#status.error { color: #a40e26; font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; list-style: none; padding: 0; margin: 0 0 10px; font-size: .85rem; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 14px; height: 12px; border-radius: 2px; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0 6px; }
th, td { text-align: left; padding: 7px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
thead th { font-size: .8rem; color: var(--muted); font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th[scope=row] { font-weight: 400; }
.expand { background: none; border: 0; padding: 0; min-height: 0; color: var(--focus); text-decoration: underline; cursor: pointer; text-align: left; font-weight: 600; overflow-wrap: anywhere; }
th[scope=row] { min-width: 13em; }
td.dominant { white-space: nowrap; }
.ns { display: block; font-size: .8rem; color: var(--muted); }
.wf { width: 48%; min-width: 220px; }
.track { position: relative; height: 22px; background: var(--panel); border-radius: 3px; overflow: hidden; }
.bar { position: absolute; top: 3px; bottom: 3px; min-width: 2px; border-radius: 2px; }
.b-sandbox, .t-sandbox { background: var(--sandbox); }
.b-pull, .t-pull { background: var(--pull); }
.b-create, .t-create { background: var(--create); }
.b-start, .t-start { background: var(--start); }
.b-kubelet { background: repeating-linear-gradient(135deg, var(--kubelet) 0 3px, #d4d4d4 3px 6px); }
.t-kubelet { background: var(--kubelet); }
.b-failed { box-shadow: inset 0 0 0 2px #fff, inset 0 0 0 4px #a40e26; }
.bar.dom { top: 1px; bottom: 1px; box-shadow: inset 0 0 0 2px var(--fg); z-index: 1; }
.mark { position: absolute; top: 0; bottom: 0; width: 0; border-left: 2px dashed var(--fg); opacity: .55; }
.tag { display: inline-block; color: #fff; font-size: .8rem; font-weight: 600; padding: 1px 7px; border-radius: 10px; }
.share { font-size: .8rem; color: var(--muted); margin-left: 4px; }
.failed { color: #a40e26; font-weight: 600; }
tr.details > td { background: #fafafa; }
.phases { margin: 4px 0 8px; font-size: .85rem; }
.phases th, .phases td { padding: 4px 6px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0; font-size: .85rem; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; word-break: break-all; }
footer { color: var(--muted); font-size: .85rem; border-top: 1px solid var(--line); }
@media (max-width: 760px) {
  header, main, footer { padding: 10px 12px; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  #starts, #rows, #rows > tr, #rows > tr > th, #rows > tr > td { display: block; width: 100%; }
  tr.pod { border: 1px solid var(--line); border-radius: 6px; margin-top: 10px; padding: 4px 0; }
  tr.pod > th, tr.pod > td { border: 0; padding: 3px 10px; }
  tr.pod > td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); font-size: .8rem; }
  .wf { width: 100%; min-width: 0; }
  th[scope=row] { min-width: 0; }
  #starts > caption { display: block; }
  tr.pod > td.wf::before { display: block; }
  .num { text-align: left; }
  tr.details > td { display: block; overflow-x: auto; }
}
`;

const SCRIPT = `
(function () {
  'use strict';
  var PARTS = ['sandbox', 'pull', 'create', 'start', 'kubelet'];
  var NAMES = { sandbox: 'sandbox', pull: 'image pull', create: 'create', start: 'start', kubelet: 'kubelet (between calls)' };
  var REFRESH_MS = 5000;
  var form = document.getElementById('filters');
  var rows = document.getElementById('rows');
  var status = document.getElementById('status');
  var caption = document.getElementById('caption');
  var open = new Set();
  var last = '';
  var timer;

  function fmt(ms) {
    if (ms < 1000) return (ms < 10 ? ms.toFixed(1) : String(Math.round(ms))) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    var m = Math.floor(ms / 60000);
    if (m < 60) return m + ' min ' + Math.floor((ms % 60000) / 1000) + ' s';
    return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
  }
  function bytes(n) {
    var units = ['B', 'kB', 'MB', 'GB', 'TB'];
    var i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'className') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function params() {
    var p = new URLSearchParams();
    ['sort', 'namespace', 'min'].forEach(function (k) {
      var v = form.elements[k].value.trim();
      if (v !== '') p.set(k, v);
    });
    return p;
  }
  function what(p) {
    if (p.phase === 'pull') return p.image || '';
    return (p.container || '') + (p.phase === 'create' && p.image ? ' (' + p.image + (p.imagePresent ? ', image present' : '') + ')' : '');
  }
  function bar(part, offset, duration, scale, title, classes) {
    var b = el('span', { className: 'bar b-' + part + (classes || ''), title: title });
    b.style.left = (offset / scale * 100) + '%';
    b.style.width = (duration / scale * 100) + '%';
    b.dataset.part = part;
    b.dataset.offsetMs = String(offset);
    b.dataset.durationMs = String(duration);
    return b;
  }
  function waterfall(s, scale, node) {
    var track = el('div', { className: 'track', role: 'img' });
    var items = [];
    s.gaps.forEach(function (g) { items.push({ part: 'kubelet', offset: g.offsetMs, duration: g.durationMs, title: 'kubelet ' + fmt(g.durationMs) }); });
    s.phases.forEach(function (p) {
      var label = p.phase + (what(p) ? ' ' + what(p) : '') + ' ' + fmt(p.durationMs) + (p.code !== 'OK' ? ' ' + p.code : '');
      items.push({ part: p.phase, offset: p.offsetMs, duration: p.durationMs, title: label, failed: p.code !== 'OK' });
    });
    items.sort(function (a, b) { return a.offset - b.offset; });
    items.forEach(function (i) {
      var classes = (i.part === s.dominant ? ' dom' : '') + (i.failed ? ' b-failed' : '');
      track.appendChild(bar(i.part, i.offset, i.duration, scale, i.title, classes));
    });
    ['p50Ms', 'p90Ms'].forEach(function (k) {
      var v = node[k];
      if (typeof v === 'number' && v <= scale) {
        var m = el('span', { className: 'mark', title: 'node ' + k.slice(0, 3) + ' ' + fmt(v), 'aria-hidden': 'true' });
        m.style.left = (v / scale * 100) + '%';
        track.appendChild(m);
      }
    });
    track.setAttribute('aria-label', items.map(function (i) { return i.title; }).join(', '));
    return track;
  }
  function details(s) {
    var head = el('tr', {}, ['Phase', 'What', 'At', 'Took', 'Image size', 'Result'].map(function (t) { return el('th', { scope: 'col', text: t }); }));
    var body = el('tbody', {}, s.phases.map(function (p) {
      return el('tr', {}, [
        el('th', { scope: 'row', text: p.phase }),
        el('td', { text: what(p) }),
        el('td', { className: 'num', text: '+' + fmt(p.offsetMs) }),
        el('td', { className: 'num', text: fmt(p.durationMs) }),
        el('td', { className: 'num', text: p.bytes ? bytes(p.bytes) : '' }),
        el('td', { className: p.code === 'OK' ? '' : 'failed', text: p.code + (p.message ? ': ' + p.message : '') })
      ]);
    }));
    var table = el('table', { className: 'phases' }, [el('caption', { className: 'sr-only', text: 'Phases of ' + (s.namespace || '') + '/' + (s.name || s.uid) }), el('thead', {}, [head]), body]);
    var facts = el('dl', { className: 'facts' });
    [['UID', s.uid], ['Backend', s.backend], ['Runtime handler', s.runtimeHandler || 'default'], ['Sandbox', s.sandboxId],
      ['Started', new Date(s.startedAt).toLocaleString()], ['Containers started', String(s.containers)],
      ['Time in kubelet', fmt(s.totals.kubelet)], ['Trace ID', s.traceId], ['Error', s.message],
      ['Phases not kept', s.phasesDropped ? String(s.phasesDropped) : undefined]].forEach(function (f) {
      if (f[1]) { facts.appendChild(el('dt', { text: f[0] })); facts.appendChild(el('dd', { text: f[1] })); }
    });
    return el('div', {}, [table, facts]);
  }
  function render(data) {
    var node = data.lastHour;
    ['p50Ms', 'p90Ms', 'p99Ms'].forEach(function (k) { document.getElementById(k).textContent = typeof node[k] === 'number' ? fmt(node[k]) : '–'; });
    document.getElementById('count').textContent = String(node.count);
    var nsSelect = form.elements.namespace;
    var chosen = nsSelect.value;
    var known = Array.prototype.map.call(nsSelect.options, function (o) { return o.value; });
    data.namespaces.forEach(function (ns) { if (known.indexOf(ns) < 0) nsSelect.appendChild(el('option', { value: ns, text: ns })); });
    nsSelect.value = chosen;
    caption.textContent = 'Pod starts, ' + (data.sort === 'slowest' ? 'slowest first' : 'newest first');
    var scale = Math.max.apply(null, [1].concat(data.podStarts.map(function (s) { return s.totalMs; })));
    var focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.seq : undefined;
    rows.textContent = '';
    data.podStarts.forEach(function (s) {
      var id = 'd-' + s.seq;
      var expanded = open.has(s.seq);
      var button = el('button', { type: 'button', className: 'expand', 'aria-expanded': String(expanded), 'aria-controls': id, text: s.name || s.uid });
      button.dataset.seq = String(s.seq);
      button.addEventListener('click', function () {
        var now = button.getAttribute('aria-expanded') !== 'true';
        button.setAttribute('aria-expanded', String(now));
        document.getElementById(id).hidden = !now;
        if (now) open.add(s.seq); else open.delete(s.seq);
      });
      var share = s.totalMs > 0 ? Math.round(s.totals[s.dominant] / s.totalMs * 100) : 0;
      var tr = el('tr', { className: 'pod' + (s.status === 'failed' ? ' is-failed' : '') }, [
        el('th', { scope: 'row' }, [button, el('span', { className: 'ns', text: s.namespace || '' })]),
        el('td', { className: 'num total', 'data-label': 'Total', text: fmt(s.totalMs) }),
        el('td', { className: 'wf', 'data-label': 'Waterfall' }, [waterfall(s, scale, node)]),
        el('td', { className: 'dominant', 'data-label': 'Took longest' }, [el('span', { className: 'tag t-' + s.dominant, text: s.dominant }), el('span', { className: 'share', text: share + '%' })]),
        el('td', { className: s.status === 'failed' ? 'failed' : '', 'data-label': 'Result', text: s.status === 'failed' ? 'failed: ' + s.code : 'started' }),
        el('td', { className: 'num', 'data-label': 'Finished', text: new Date(s.endedAt).toLocaleTimeString() })
      ]);
      tr.dataset.seq = String(s.seq);
      tr.dataset.totalMs = String(s.totalMs);
      tr.dataset.namespace = s.namespace || '';
      var more = el('tr', { className: 'details', id: id }, [el('td', { colspan: '6' }, [details(s)])]);
      more.hidden = !expanded;
      rows.appendChild(tr);
      rows.appendChild(more);
    });
    document.getElementById('empty').hidden = data.podStarts.length > 0;
    if (focused) {
      var again = rows.querySelector('button[data-seq="' + focused + '"]');
      if (again) again.focus();
    }
    status.className = '';
    status.textContent = 'Showing ' + data.podStarts.length + ' of ' + data.matched + ' pod starts · updated ' + new Date(data.generatedAt).toLocaleTimeString();
  }
  function load() {
    var p = params();
    return fetch('api/pods?' + p.toString(), { cache: 'no-store' }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.error || ('HTTP ' + r.status));
        var key = JSON.stringify([p.toString(), body.matched, body.lastHour, body.podStarts.map(function (s) { return s.seq; })]);
        if (key !== last) { last = key; render(body); }
        else status.textContent = status.textContent.replace(/updated .*$/, 'updated ' + new Date(body.generatedAt).toLocaleTimeString());
        document.body.dataset.loaded = String(Number(document.body.dataset.loaded || '0') + 1);
      });
    }).catch(function (err) {
      status.className = 'error';
      status.textContent = 'Could not load pod starts: ' + err.message;
      document.body.dataset.loaded = String(Number(document.body.dataset.loaded || '0') + 1);
    });
  }
  function schedule() {
    clearInterval(timer);
    if (form.elements.refresh.checked) timer = setInterval(function () { if (!document.hidden) load(); }, REFRESH_MS);
  }
  function apply() {
    var p = params();
    history.replaceState(null, '', p.toString() ? '?' + p.toString() : location.pathname);
    last = '';
    load();
  }
  var initial = new URLSearchParams(location.search);
  form.elements.sort.value = initial.get('sort') === 'newest' ? 'newest' : 'slowest';
  if (initial.get('namespace')) form.elements.namespace.appendChild(el('option', { value: initial.get('namespace'), text: initial.get('namespace') }));
  form.elements.namespace.value = initial.get('namespace') || '';
  form.elements.min.value = initial.get('min') || '';
  form.addEventListener('submit', function (e) { e.preventDefault(); apply(); });
  form.elements.sort.addEventListener('change', apply);
  form.elements.namespace.addEventListener('change', apply);
  form.elements.min.addEventListener('change', apply);
  form.elements.refresh.addEventListener('change', schedule);
  var legend = document.getElementById('legend');
  PARTS.forEach(function (part) { legend.appendChild(el('li', {}, [el('span', { className: 'swatch b-' + part, 'aria-hidden': 'true' }), document.createTextNode(NAMES[part])])); });
  legend.appendChild(el('li', { text: 'dashed lines: node p50 and p90 · outlined: the part that took longest' }));
  load();
  schedule();
})();
`;

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
<style>${STYLE}</style>
</head>
<body>
${BODY}
<script>${SCRIPT}</script>
</body>
</html>
`;

// Only this page's own script and style run; it may fetch from its own origin and nothing else.
const POLICY = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
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
