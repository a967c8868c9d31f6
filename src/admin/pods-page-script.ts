/**
 * The `/pods` page's script, run by the browser as it is (no build step, no module): reads `api/pods` with the
 * page's query, draws a waterfall per pod start, refreshes every few seconds. Everything it shows comes from the
 * JSON and is put in the page as text, never as markup.
 */
export const PODS_PAGE_SCRIPT = `
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
