// The node's dashboard. Plain JavaScript, no framework, nothing loaded from
// anywhere but the node: every number on the page comes from its HTTP API
// (/api/v1/...). Text from the node (addresses, seeds' errors, event
// messages) only ever goes into textContent, never into HTML.
'use strict';

(function () {
  const API = '/api/v1';
  const SVGNS = 'http://www.w3.org/2000/svg';
  const WINDOW = 120; // live samples kept: two minutes at one a second
  const EVENTS_KEPT = 50; // notable events listed
  const MAX_LINE = 1 << 20; // the longest event-stream line the token reader buffers
  const KEYS_PAGE = 50;
  const REFRESH_MS = 5000; // info and table
  const ANSWER_COLORS = { contacts: '#2f6fdf', values: '#1f8a4c', timeout: '#c7322f', error: '#c98a06' };
  // The notable event kinds of the daemon (node.Event*); EventSource can
  // only listen to event names it knows.
  const NOTABLE = ['started', 'join_failed', 'joined', 'seed_lost', 'seed_found', 'contacts_lost', 'alone', 'seed_down', 'seed_up'];

  const $ = (s) => document.querySelector(s);
  let token = sessionStorage.getItem('dht-token') || '';
  let self = '';
  let lastTarget = '';

  // ---- talking to the API ----

  // call fetches an API path and decodes its JSON: {ok, status, body}. A
  // 401 shows the token form.
  async function call(path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const resp = await fetch(path, { headers, cache: 'no-store' });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.status === 401) needToken(body && body.error ? body.error.message : 'unauthorized');
    return { ok: resp.ok, status: resp.status, body };
  }

  function errorText(r) {
    if (r.body && r.body.error) return r.body.error.code + ': ' + r.body.error.message;
    return 'HTTP ' + r.status;
  }

  function needToken(msg) {
    $('#token-form').hidden = false;
    $('#token-error').textContent = token ? msg : '';
  }

  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('#token').value.trim();
    sessionStorage.setItem('dht-token', token);
    $('#token-error').textContent = '';
    refresh().then((ok) => { if (ok) { $('#token-form').hidden = true; } });
    stream.restart();
  });

  // ---- small helpers ----

  function el(tag, props, parent) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === 'text') e.textContent = v;
        else if (k === 'class') e.className = v;
        else if (k === 'title') e.title = v;
        else e.setAttribute(k, v);
      }
    }
    if (parent) parent.appendChild(e);
    return e;
  }

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVGNS, tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (k === 'text') e.textContent = v;
        else e.setAttribute(k, v);
      }
    }
    if (parent) parent.appendChild(e);
    return e;
  }

  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }

  function short(id) { return id ? id.slice(0, 10) + '…' : ''; }

  function fmtAge(s) {
    if (s === null || s === undefined) return 'never';
    if (s < 1) return 'just now';
    if (s < 60) return Math.round(s) + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 86400) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  }

  function fmtBytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + ' MiB';
    return (n / (1 << 30)).toFixed(2) + ' GiB';
  }

  function fmtMs(s) { return (s * 1000).toFixed(s < 0.01 ? 2 : 1); }

  // log2dist is log2 of the XOR distance between two IDs (40 hex digits),
  // with its fraction: -1 for the same ID.
  function log2dist(a, b) {
    const d = BigInt('0x' + a) ^ BigInt('0x' + b);
    if (d === 0n) return -1;
    const bits = d.toString(2).length;
    const shift = bits > 53 ? bits - 53 : 0;
    return Math.log2(Number(d >> BigInt(shift))) + shift;
  }

  // niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function fmtNum(v) {
    if (v >= 100) return Math.round(v).toString();
    if (v >= 10) return v.toFixed(1);
    return v.toFixed(2).replace(/\.?0+$/, '') || '0';
  }

  // ---- node info ----

  function renderInfo(info) {
    self = info.id;
    $('#self-id').textContent = short(info.id);
    $('#self-id').title = info.id;
    document.title = 'dht node ' + info.id.slice(0, 8);
    const dl = $('#info');
    clear(dl);
    const item = (k, v, title) => {
      const d = el('div', null, dl);
      el('dt', { text: k }, d);
      const dd = el('dd', { text: v }, d);
      if (title) dd.title = title;
      return dd;
    };
    item('version', info.version || '—');
    const net = info.network || {};
    item('network', (net.name || 'unnamed') + ' #' + (net.id >>> 0).toString(16));
    item('udp', (info.addrs || []).join(' '));
    item('uptime', fmtAge(info.uptime_seconds));
    item('joined', info.joined ? 'yes' : 'no');
    item('contacts', String(info.contacts));
    item('stored', info.records + ' records, ' + fmtBytes(info.bytes));
    if (info.seeds && info.seeds.length) {
      const dd = item('seeds', '');
      info.seeds.forEach((s, i) => {
        if (i) dd.appendChild(document.createTextNode(' '));
        el('span', { class: 'seed-' + s.state, text: s.addr, title: s.state + (s.last_error ? ': ' + s.last_error : '') }, dd);
      });
    }
  }

  // ---- routing table ----

  // freshness: the colour of a contact last heard from s seconds ago.
  const FRESH = [[60, '#1f8a4c', '< 1 min'], [300, '#6cbf4a', '< 5 min'], [900, '#e0b400', '< 15 min'], [3600, '#e07b00', '< 1 h'], [Infinity, '#9aa3ad', 'older']];
  function freshness(s) {
    for (const [lim, color] of FRESH) if (s < lim) return color;
    return FRESH[FRESH.length - 1][1];
  }

  function legend(box, entries) {
    clear(box);
    for (const [color, label, hollow] of entries) {
      const s = el('span', null, box);
      const i = el('i', null, s);
      if (hollow) { i.style.border = '2px solid ' + color; i.style.boxSizing = 'border-box'; } else i.style.background = color;
      s.appendChild(document.createTextNode(label));
    }
  }
  legend($('#fresh-legend'), FRESH.map(([, c, l]) => [c, 'seen ' + l]).concat([['#c7322f', 'unanswered requests', true]]));

  function renderTable(t) {
    const tbody = $('#routing-table tbody');
    clear(tbody);
    const targetBucket = lastTarget && self ? Math.floor(log2dist(self, lastTarget)) : null;
    let total = 0;
    for (const b of t.buckets) {
      total += b.count;
      const recent = b.last_lookup_seconds !== null && b.last_lookup_seconds < 600;
      const tr = el('tr', { class: 'bucket' + (recent ? ' recent' : '') + (b.index === targetBucket ? ' target' : ''), 'data-index': b.index, 'data-count': b.count, 'data-k': b.k }, tbody);
      const range = el('td', { class: 'range' }, tr);
      range.appendChild(document.createTextNode('2'));
      el('sup', { text: String(b.index) }, range);
      range.appendChild(document.createTextNode(' … 2'));
      el('sup', { text: String(b.index + 1) }, range);
      const slots = el('div', { class: 'slots' }, el('td', null, tr));
      const cs = b.contacts.slice().sort((x, y) => x.last_seen_seconds - y.last_seen_seconds);
      for (let i = 0; i < Math.max(b.k, cs.length); i++) {
        const c = cs[i];
        if (!c) { el('span', { class: 'slot' }, slots); continue; }
        const s = el('span', {
          class: 'slot filled' + (c.failures > 0 ? ' failing' : '') + (c.verified ? '' : ' unverified'),
          title: c.id + '\n' + c.addr + '\nlast seen ' + fmtAge(c.last_seen_seconds) + ' ago' + (c.verified ? '' : '\nnot verified') + (c.failures ? '\n' + c.failures + ' unanswered' : ''),
        }, slots);
        s.style.background = freshness(c.last_seen_seconds);
      }
      el('td', { class: 'num count', text: b.count + ' / ' + b.k }, tr);
      el('td', { class: 'num', text: b.replacements ? '+' + b.replacements : '' }, tr);
      const looked = el('td', { class: 'looked' }, tr);
      if (b.last_lookup_seconds === null) {
        looked.textContent = 'never';
      } else {
        const bar = el('span', { class: 'lookbar' }, looked);
        bar.style.width = Math.max(2, 60 * (1 - Math.min(b.last_lookup_seconds, 3600) / 3600)) + 'px';
        looked.appendChild(document.createTextNode(fmtAge(b.last_lookup_seconds) + ' ago'));
      }
    }
    if (!t.buckets.length) el('td', { colspan: 5, text: 'empty: this node knows no other node yet' }, el('tr', null, tbody));
    $('#table-summary').textContent = total + ' contacts in ' + t.buckets.length + ' ranges, k = ' + t.k;
    const tbl = $('#routing-table');
    tbl.dataset.loaded = '1';
    tbl.dataset.renders = String(Number(tbl.dataset.renders || 0) + 1); // for tests: a new drawing
  }

  // ---- stored keys ----

  const keysPages = []; // the after= cursors of the pages before this one
  let keysAfter = '';
  let keysNext = '';

  async function loadKeys() {
    const q = new URLSearchParams({ limit: String(KEYS_PAGE) });
    if (keysAfter) q.set('after', keysAfter);
    const r = await call(API + '/keys?' + q);
    if (!r.ok) { $('#keys-error').textContent = errorText(r); return false; }
    $('#keys-error').textContent = '';
    const tbody = $('#keys-table tbody');
    clear(tbody);
    for (const k of r.body.keys) {
      const tr = el('tr', { 'data-key': k.key, title: 'look up this key\'s values' }, tbody);
      el('td', { class: 'mono', text: k.key.slice(0, 10) + '…' + k.key.slice(-6), title: k.key }, tr);
      el('td', { class: 'num', text: String(k.records) }, tr);
      el('td', { class: 'num', text: fmtBytes(k.bytes) }, tr);
      el('td', { class: 'num', text: String(k.publishers) }, tr);
      el('td', { class: 'num', text: fmtAge(k.earliest_expiry_seconds) }, tr);
      el('td', { class: 'num', text: fmtAge(k.latest_expiry_seconds) }, tr);
      tr.addEventListener('click', () => {
        $('#lookup-target').value = k.key;
        $('#lookup-as').value = 'id';
        $('#lookup-type').value = 'value';
      });
    }
    if (!r.body.keys.length) el('td', { colspan: 6, text: keysAfter ? 'no more keys' : 'this node stores no value' }, el('tr', null, tbody));
    keysNext = r.body.more && r.body.next ? r.body.next : '';
    $('#keys-next').disabled = !keysNext;
    $('#keys-first').disabled = !keysAfter;
    const first = keysPages.length * KEYS_PAGE + 1;
    $('#keys-summary').textContent = r.body.keys.length ? 'keys ' + first + '–' + (first + r.body.keys.length - 1) + (r.body.more ? ', more follow' : '') : '';
    return true;
  }
  $('#keys-next').addEventListener('click', () => {
    if (!keysNext) return;
    keysPages.push(keysAfter);
    keysAfter = keysNext;
    loadKeys();
  });
  $('#keys-first').addEventListener('click', () => { keysPages.length = 0; keysAfter = ''; loadKeys(); });

  // ---- refreshing ----

  async function refresh() {
    try {
      const [info, table] = await Promise.all([call(API + '/info'), call(API + '/table')]);
      if (info.ok) renderInfo(info.body);
      if (table.ok) { renderTable(table.body); $('#table-error').textContent = ''; } else $('#table-error').textContent = errorText(table);
      return info.ok && table.ok;
    } catch (e) {
      $('#table-error').textContent = 'the node does not answer: ' + e.message;
      return false;
    }
  }

  // ---- lookups ----

  $('#lookup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const target = $('#lookup-target').value.trim();
    const as = $('#lookup-as').value;
    const type = $('#lookup-type').value;
    const status = $('#lookup-status');
    if (as === 'id' && !/^[0-9a-fA-F]{40}$/.test(target)) { status.textContent = 'an ID is 40 hex digits'; return; }
    const q = new URLSearchParams({ [as]: target, type });
    status.textContent = 'looking up…';
    $('#lookup-run').disabled = true;
    try {
      const r = await call(API + '/lookup?' + q);
      // A lookup that failed may still carry its trace ("result").
      const res = r.ok ? r.body : r.body && r.body.result;
      status.textContent = r.ok ? '' : errorText(r);
      if (res) drawLookup(res);
      refresh(); // the range looked up is now recent
    } catch (e) {
      status.textContent = 'the node does not answer: ' + e.message;
    } finally {
      $('#lookup-run').disabled = false;
    }
  });

  legend($('#answer-legend'), [[ANSWER_COLORS.contacts, 'answered with contacts'], [ANSWER_COLORS.values, 'answered with values'], [ANSWER_COLORS.timeout, 'timed out', true], [ANSWER_COLORS.error, 'error'], ['#1d2430', 'among the closest found', true]]);

  function drawLookup(res) {
    lastTarget = res.target;
    const qs = [];
    res.rounds.forEach((r, i) => r.queries.forEach((q, j) => qs.push(Object.assign({}, q, { round: i + 1, order: j, of: r.queries.length, d: log2dist(q.node.id, res.target) }))));
    const answered = qs.filter((q) => q.answer === 'contacts' || q.answer === 'values').length;
    const nvalues = (res.values || []).length;
    $('#lookup-summary').textContent = res.type + ' lookup of ' + res.target + ': ' + res.rounds.length + ' rounds, ' + qs.length + ' queries (' + answered + ' answered, ' +
      qs.filter((q) => q.answer === 'timeout').length + ' timed out), ' + fmtMs(res.duration_seconds) + ' ms' + (res.type === 'value' ? ', ' + nvalues + ' values' : '') +
      ', closest found at 2^' + (res.closest.length ? log2dist(res.closest[0].id, res.target).toFixed(1) : '—');
    $('#lookup-result').hidden = false;
    const closest = new Set(res.closest.map((c) => c.id));
    drawConvergence(res, qs, closest);
    drawTimings(res, qs);
    const tbody = $('#lookup-queries tbody');
    clear(tbody);
    for (const q of qs) {
      const tr = el('tr', null, tbody);
      el('td', { class: 'num', text: String(q.round) }, tr);
      el('td', { class: 'mono', text: short(q.node.id), title: q.node.id }, tr);
      el('td', { class: 'mono', text: q.node.addr }, tr);
      el('td', { class: 'num', text: q.d < 0 ? '0' : '2^' + q.d.toFixed(2) }, tr);
      el('td', { class: 'num', text: fmtMs(q.start_seconds) }, tr);
      el('td', { class: 'num', text: fmtMs(q.duration_seconds) }, tr);
      const a = q.answer === 'contacts' ? q.contacts.length + ' contacts' : q.answer === 'values' ? q.values + ' values' : q.answer === 'error' ? 'error: ' + (q.error || '') : 'timeout';
      el('td', { class: 'answer-' + q.answer, text: a }, tr);
    }
  }

  function drawConvergence(res, qs, closest) {
    const box = $('#lookup-plot');
    clear(box);
    const W = 640, H = 320, m = { l: 46, r: 12, t: 12, b: 30 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const R = Math.max(1, res.rounds.length);
    const ds = qs.map((q) => Math.max(q.d, 0));
    let lo = ds.length ? Math.max(0, Math.floor(Math.min(...ds)) - 1) : 0;
    let hi = ds.length ? Math.min(160, Math.ceil(Math.max(...ds)) + 1) : 160;
    if (hi - lo < 4) { lo = Math.max(0, hi - 4); hi = lo + 4; }
    const y = (d) => m.t + (hi - Math.max(d, 0)) / (hi - lo) * ph;
    const colW = pw / R;
    const x = (q) => m.l + (q.round - 1) * colW + colW * (q.order + 1) / (q.of + 1);
    const step = Math.max(1, Math.ceil((hi - lo) / 8));
    for (let v = Math.ceil(lo); v <= hi; v += step) {
      svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }, box);
      const t = svg('text', { x: m.l - 6, y: y(v) + 3, 'text-anchor': 'end', text: '2' }, box);
      svg('tspan', { dy: -4, 'font-size': 8, text: String(v) }, t);
    }
    for (let r = 0; r < R; r++) {
      if (r) svg('line', { class: 'grid', x1: m.l + r * colW, x2: m.l + r * colW, y1: m.t, y2: H - m.b }, box);
      svg('text', { x: m.l + (r + 0.5) * colW, y: H - m.b + 14, 'text-anchor': 'middle', text: 'round ' + (r + 1) }, box);
    }
    svg('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }, box);
    svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, box);
    svg('text', { x: 10, y: m.t + ph / 2, 'text-anchor': 'middle', transform: 'rotate(-90 10 ' + (m.t + ph / 2) + ')', text: 'XOR distance to target' }, box);
    // Who named whom: a node's first query is joined to the earliest
    // query that answered with it.
    const namedBy = new Map();
    for (const q of qs.slice().sort((a, b) => a.round - b.round || a.start_seconds - b.start_seconds)) {
      for (const c of q.contacts || []) if (!namedBy.has(c.id)) namedBy.set(c.id, q);
    }
    const edges = svg('g', null, box);
    for (const q of qs) {
      const p = namedBy.get(q.node.id);
      if (p && p.round < q.round) svg('line', { class: 'edge', x1: x(p), y1: y(p.d), x2: x(q), y2: y(q.d) }, edges);
    }
    for (const q of qs) {
      const c = svg('circle', {
        class: 'q ' + q.answer + (closest.has(q.node.id) ? ' closest' : ''),
        cx: x(q), cy: y(q.d), r: 5, fill: ANSWER_COLORS[q.answer] || '#888',
        'data-round': q.round, 'data-id': q.node.id,
      }, box);
      svg('title', { text: q.node.id + '\n' + q.node.addr + '\nround ' + q.round + ', distance 2^' + Math.max(q.d, 0).toFixed(2) + '\nsent at ' + fmtMs(q.start_seconds) + ' ms, took ' + fmtMs(q.duration_seconds) + ' ms\n' + q.answer }, c);
    }
    box.dataset.rounds = String(res.rounds.length);
    box.dataset.queries = String(qs.length);
  }

  // fmtTime labels a time axis: µs, ms or s.
  function fmtTime(s) {
    if (s < 1e-3) return fmtNum(s * 1e6) + ' µs';
    if (s < 1) return fmtNum(s * 1e3) + ' ms';
    return fmtNum(s) + ' s';
  }

  // drawTimings draws each query as a bar from when it was sent to its
  // answer, on a log time axis: answers in a tenth of a millisecond on
  // loopback and timeouts of a second both stay readable. A timeout the
  // trace gives no duration for runs to the end of the lookup, dashed.
  function drawTimings(res, qs) {
    const box = $('#lookup-timing');
    clear(box);
    const W = 640, H = 320, m = { l: 46, r: 56, t: 12, b: 30 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const rows = qs.slice().sort((a, b) => a.round - b.round || a.start_seconds - b.start_seconds);
    const end = (q) => (q.answer === 'timeout' && !(q.duration_seconds > 0) ? Math.max(res.duration_seconds, q.start_seconds) : q.start_seconds + q.duration_seconds);
    const tmax = Math.max(res.duration_seconds || 0, ...rows.map(end), 1e-5);
    const positive = rows.flatMap((q) => [q.start_seconds, end(q)]).filter((v) => v > 0);
    const lo = Math.log10(Math.max(1e-6, Math.min(tmax / 10, ...positive) / 2));
    const hi = Math.log10(tmax);
    const x = (t) => m.l + (Math.log10(Math.max(t, Math.pow(10, lo))) - lo) / (hi - lo) * pw;
    const rowH = rows.length ? Math.min(16, ph / rows.length) : 16;
    for (let p = Math.ceil(lo); p <= Math.floor(hi); p++) {
      const t = Math.pow(10, p);
      svg('line', { class: 'grid', x1: x(t), x2: x(t), y1: m.t, y2: H - m.b }, box);
      svg('text', { x: x(t), y: H - m.b + 14, 'text-anchor': 'middle', text: fmtTime(t) }, box);
    }
    svg('text', { x: m.l, y: H - m.b + 14, 'text-anchor': 'start', text: '0' }, box);
    svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, box);
    let prev = 0;
    rows.forEach((q, i) => {
      const yy = m.t + i * rowH;
      if (q.round !== prev) {
        prev = q.round;
        if (i) svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: yy, y2: yy }, box);
        svg('text', { x: m.l - 6, y: yy + rowH * 0.75, 'text-anchor': 'end', text: 'round ' + q.round }, box);
      }
      const open = q.answer === 'timeout' && !(q.duration_seconds > 0);
      const x0 = x(q.start_seconds), x1 = x(end(q));
      const color = ANSWER_COLORS[q.answer] || '#888';
      const bar = svg('rect', {
        class: 'bar ' + q.answer, x: x0, y: yy + rowH * 0.15, width: Math.max(1.5, x1 - x0), height: rowH * 0.7, rx: 1.5,
        fill: open ? 'none' : color, 'fill-opacity': q.answer === 'timeout' ? 0.35 : 0.9,
        stroke: open ? color : 'none', 'stroke-dasharray': open ? '3 2' : 'none',
      }, box);
      const took = open ? 'no answer before the lookup ended' : fmtTime(q.duration_seconds);
      svg('title', { text: short(q.node.id) + ' ' + q.node.addr + ': sent at ' + fmtTime(q.start_seconds) + ', ' + took + ', ' + q.answer }, bar);
      if (rowH >= 9) svg('text', { x: Math.max(x0, x1) + 4, y: yy + rowH * 0.72, text: open ? 'timeout' : fmtTime(q.duration_seconds) }, box);
    });
  }


  // ---- live charts ----

  const samples = []; // the last WINDOW samples, oldest first
  let streamDropped = 0;
  const sumPrefix = (o, p) => Object.entries(o || {}).reduce((s, [k, v]) => (k.startsWith(p) ? s + v : s), 0);
  const CHARTS = [
    {
      box: '#chart-rates', legend: '#legend-rates', unit: '/s',
      series: [['packets_in', 'packets in', '#2f6fdf'], ['packets_out', 'packets out', '#79a6f0'], ['requests', 'requests sent', '#1f8a4c'],
        ['served', 'requests served', '#8e44ad'], ['responses', 'responses', '#16a2a0'], ['timeouts', 'timeouts', '#c7322f']],
      get: (s, k) => (k === 'served' ? sumPrefix(s.rates, 'served_') : (s.rates || {})[k] || 0),
    },
    {
      box: '#chart-latency', legend: '#legend-latency', unit: ' ms',
      series: [['p50', 'p50', '#1f8a4c'], ['p90', 'p90', '#e0b400'], ['p99', 'p99', '#e07b00'], ['max', 'max', '#c7322f']],
      get: (s, k) => ((s.latency || {})[k + '_seconds'] || 0) * 1000,
      // A second in which no request was answered has no latency, not a
      // latency of zero: its point is left out.
      has: (s) => ((s.latency || {}).max_seconds || 0) > 0,
      none: 'no request answered in this window',
    },
    {
      box: '#chart-drops', legend: '#legend-drops', unit: '',
      series: [['malformed', 'malformed', '#c7322f'], ['wrong_network', 'wrong network', '#e07b00'], ['unmatched', 'unmatched', '#8e44ad'], ['rpc_full', 'request queue full', '#667085']],
      get: (s, k) => (s.drops || {})[k] || 0,
    },
  ];

  function addSample(ev) {
    if (!ev.sample) return;
    samples.push(ev.sample);
    while (samples.length > WINDOW) samples.shift();
    for (const c of CHARTS) drawChart(c);
    const last = ev.sample;
    $('#live-summary').textContent = samples.length + ' samples, last at ' + new Date(ev.time).toLocaleTimeString() + ' over ' + fmtNum(last.interval_seconds) + ' s' +
      (streamDropped ? '; ' + streamDropped + ' events missed by this page' : '');
  }

  function drawChart(c) {
    const box = $(c.box);
    clear(box);
    const W = 400, H = 180, m = { l: 40, r: 8, t: 8, b: 18 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    let peak = 0;
    for (const s of samples) for (const [k] of c.series) peak = Math.max(peak, c.get(s, k));
    const top = niceMax(peak);
    const y = (v) => m.t + ph - v / top * ph;
    const x = (i) => m.l + pw - (samples.length - 1 - i) * pw / (WINDOW - 1);
    for (let i = 0; i <= 4; i++) {
      const v = top * i / 4;
      svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }, box);
      svg('text', { x: m.l - 4, y: y(v) + 3, 'text-anchor': 'end', text: fmtNum(v) }, box);
    }
    svg('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }, box);
    svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, box);
    svg('text', { x: m.l, y: H - 4, text: '−' + WINDOW + ' s' }, box);
    svg('text', { x: W - m.r, y: H - 4, 'text-anchor': 'end', text: 'now' }, box);
    if (samples.length && peak === 0) svg('text', { x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle', text: c.none || 'all zero in this window' }, box);
    const lg = $(c.legend);
    clear(lg);
    const has = c.has || (() => true);
    const shown = samples.map((s, i) => [s, i]).filter(([s]) => has(s));
    for (const [k, label, color] of c.series) {
      const pts = shown.map(([s, i]) => x(i).toFixed(1) + ',' + y(c.get(s, k)).toFixed(1)).join(' ');
      svg('polyline', { class: 'series', points: pts, stroke: color, 'data-series': k }, box);
      // Where points are left out, a line may join far ones or a point
      // stand alone: dots show where the measurements are.
      if (c.has) for (const [sm, i] of shown) svg('circle', { cx: x(i).toFixed(1), cy: y(c.get(sm, k)).toFixed(1), r: 1.5, fill: color }, box);
      const s = el('span', null, lg);
      el('i', null, s).style.background = color;
      const last = shown.length ? shown[shown.length - 1][0] : null;
      s.appendChild(document.createTextNode(label + ' ' + (last ? fmtNum(c.get(last, k)) + c.unit : '—')));
    }
    box.dataset.samples = String(samples.length);
    box.dataset.peak = String(peak); // the highest value drawn: tests read it
  }
  for (const c of CHARTS) drawChart(c);

  function logEvent(ev) {
    const ol = $('#event-log');
    const li = el('li', null, null);
    el('time', { text: new Date(ev.time || Date.now()).toLocaleTimeString() }, li);
    li.appendChild(document.createTextNode(ev.kind + (ev.message ? ': ' + ev.message : '')));
    ol.insertBefore(li, ol.firstChild);
    while (ol.children.length > EVENTS_KEPT) ol.removeChild(ol.lastChild);
  }

  function onEvent(name, data) {
    let ev;
    try { ev = JSON.parse(data); } catch (e) { return; }
    if (name === 'stats') addSample(ev);
    else if (name === 'dropped') { streamDropped += ev.dropped || 0; }
    else if (name === 'end') { logEvent({ kind: 'end', message: 'the node ended the stream (stopping)' }); }
    else logEvent(ev);
  }

  // ---- the event stream ----
  //
  // Without a token: EventSource, which reconnects by itself. With one
  // (EventSource cannot send headers): fetch, reading text/event-stream
  // from the response body, reconnecting with a growing delay.

  const stream = {
    es: null,
    abort: null,
    delay: 1000,
    timer: 0,
    state(s, title) {
      const e = $('#stream-state');
      e.dataset.state = s;
      e.textContent = s === 'live' ? 'live' : s === 'connecting' ? 'connecting…' : 'stream lost, retrying';
      e.title = title || 'the node\'s event stream';
    },
    restart() {
      this.stop();
      this.delay = 1000;
      this.start();
    },
    stop() {
      if (this.es) { this.es.close(); this.es = null; }
      if (this.abort) { this.abort.abort(); this.abort = null; }
      clearTimeout(this.timer);
    },
    retry(why) {
      this.stop();
      this.state('error', why);
      this.timer = setTimeout(() => this.start(), this.delay);
      this.delay = Math.min(this.delay * 2, 30000);
    },
    start() {
      this.state('connecting');
      if (token) { this.startFetch(); return; }
      const es = new EventSource(API + '/events');
      this.es = es;
      es.onopen = () => { this.delay = 1000; this.state('live'); };
      es.onerror = () => {
        // CLOSED: the node answered with an error (401, 503); CONNECTING:
        // EventSource retries by itself.
        if (es.readyState === EventSource.CLOSED) { call(API + '/info').catch(() => {}); this.retry('the node refused the stream'); } else this.state('error', 'reconnecting');
      };
      for (const name of ['stats', 'dropped', 'message'].concat(NOTABLE)) es.addEventListener(name, (e) => onEvent(name, e.data));
      es.addEventListener('end', (e) => { onEvent('end', e.data); this.retry('the node ended the stream'); });
    },
    async startFetch() {
      const ctl = new AbortController();
      this.abort = ctl;
      let resp;
      try {
        resp = await fetch(API + '/events', { headers: { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' }, signal: ctl.signal, cache: 'no-store' });
      } catch (e) {
        if (!ctl.signal.aborted) this.retry(e.message);
        return;
      }
      if (resp.status === 401) { needToken('wrong token'); this.state('error', 'wrong token'); return; }
      if (!resp.ok || !resp.body) { this.retry('HTTP ' + resp.status); return; }
      this.delay = 1000;
      this.state('live');
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '', name = '', data = [];
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).replace(/\r$/, '');
            buf = buf.slice(nl + 1);
            if (line === '') {
              if (data.length) onEvent(name || 'message', data.join('\n'));
              if (name === 'end') { this.retry('the node ended the stream'); return; }
              name = ''; data = [];
            } else if (line.startsWith(':')) {
              // a comment: keep-alive
            } else {
              const i = line.indexOf(':');
              const field = i < 0 ? line : line.slice(0, i);
              const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
              if (field === 'event') name = val;
              else if (field === 'data') data.push(val);
            }
          }
          if (buf.length > MAX_LINE) { ctl.abort(); this.retry('an event too long'); return; }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      this.retry('the stream closed');
    },
  };

  // ---- start ----

  refresh();
  loadKeys();
  stream.start();
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  setInterval(() => { if (!document.hidden && !keysAfter) loadKeys(); }, 2 * REFRESH_MS);
}());
