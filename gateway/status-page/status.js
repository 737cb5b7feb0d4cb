// The status page's only script: every few seconds it fetches ./status (the gateway's JSON,
// gateway/src/status.ts) and fills the page. Text goes in with textContent only, never as HTML:
// user, group and host names come from the directory. Nothing is sent back to the gateway.
'use strict';

const REFRESH_MS = 2000;
let lastOk = 0;

const $ = (id) => document.getElementById(id);

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function time(iso) {
  return new Date(iso).toLocaleTimeString();
}

/** A table cell: text, or [text, small second line], with an optional class. */
function cell(content, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  if (Array.isArray(content)) {
    td.append(String(content[0]));
    const sub = document.createElement('div');
    sub.className = 'sub';
    sub.textContent = String(content[1]);
    td.append(sub);
  } else {
    td.textContent = String(content);
  }
  return td;
}

/** Fills a table's body with one row per item; `cols` maps an item to its cells. */
function fill(tableId, items, cols, empty) {
  const body = $(tableId).tBodies[0];
  const rows = items.map((item) => {
    const tr = document.createElement('tr');
    for (const c of cols(item)) tr.append(c);
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(empty, 'empty');
    td.colSpan = $(tableId).tHead ? $(tableId).tHead.rows[0].cells.length : 2;
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function counts(tableId, record, empty) {
  const entries = Object.entries(record).sort((a, b) => b[1] - a[1]);
  fill(tableId, entries, ([k, v]) => [cell(k), cell(v.toLocaleString(), 'num')], empty);
}

function render(s) {
  const health = $('health');
  health.textContent = s.health.ok ? 'healthy' : 'PROBLEM';
  health.className = `badge ${s.health.ok ? 'ok' : 'bad'}`;
  $('meta').textContent =
    `up ${duration(s.uptimeSec * 1000)} · node ${s.node} · updated ${time(s.generatedAt)}`;
  const problems = $('problems');
  problems.hidden = s.health.ok;
  problems.replaceChildren(
    ...s.health.problems.map((p) => {
      const li = document.createElement('li');
      li.textContent = p;
      return li;
    }),
  );

  $('n-sessions').textContent = s.sessions.length;
  $('n-flows').textContent = s.flows.length;
  $('n-ports').textContent = `${s.ports.inUse}`;
  const policy = $('policy');
  policy.textContent = s.policy.ageSec === null ? 'none' : `${s.policy.ageSec} s`;
  policy.className = `value${s.policy.usable ? '' : ' bad'}`;
  const engine = $('engine');
  const engineOk = s.engine.running && s.engine.panics === 0 && s.engine.backendErrors === 0;
  engine.textContent = !s.engine.running ? 'not running' : engineOk ? 'running' : 'errors';
  engine.className = `value${engineOk ? '' : ' bad'}`;

  fill(
    'sessions',
    s.sessions,
    (x) => [
      cell(x.user),
      cell(x.group),
      cell(x.en),
      cell(time(x.since)),
      cell(x.reservations, 'num'),
      cell(x.flows, 'num'),
    ],
    'no session',
  );
  fill(
    'flows',
    s.flows,
    (f) => [
      cell(f.user),
      cell(f.group),
      cell([f.in, `${f.pin}:${f.d ?? '?'}`]),
      cell(f.proto),
      cell(f.ghr ?? '–'),
      cell([bytes(f.payloadToIn), `${bytes(f.bytesToIn)} on the wire`], 'num'),
      cell([bytes(f.payloadToEn), `${bytes(f.bytesToEn)} on the wire`], 'num'),
      cell(`${f.packetsToIn.toLocaleString()} / ${f.packetsToEn.toLocaleString()}`, 'num'),
      cell(duration(f.durationMs), 'num'),
      cell(f.close === 'none' ? f.state : `${f.state} (${f.close})`),
    ],
    'no live flow',
  );
  fill(
    'refusals',
    s.refusals,
    (r) => [
      cell(time(r.at)),
      cell(r.step),
      cell(r.user),
      cell(r.group),
      cell(r.in),
      cell(r.en),
      cell(r.reason, 'reason'),
    ],
    'no refusal since the gateway started',
  );
  counts('drops', s.drops.packets, 'none');
  counts('control-drops', s.drops.control, 'none');
  const e = s.engine;
  fill(
    'engine-table',
    [
      ['backend', e.backend ?? '–'],
      ['packets', e.packets.toLocaleString()],
      ['table entries (ports)', e.entries],
      ['panics caught', e.panics],
      ['events lost', e.eventsDropped],
      ['queue errors', e.backendErrors],
    ],
    ([k, v]) => [cell(k), cell(v, 'num')],
    'no engine',
  );
  document.body.dataset.state = 'ready';
}

async function refresh() {
  if (!$('pause').checked) {
    try {
      const res = await fetch('status', { cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      render(await res.json());
      lastOk = Date.now();
      $('offline').hidden = true;
    } catch (err) {
      const off = $('offline');
      off.hidden = false;
      off.textContent = `The gateway does not answer (${err.message})${
        lastOk ? `; last update ${new Date(lastOk).toLocaleTimeString()}` : ''
      }.`;
      document.body.dataset.state = 'offline';
    }
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
