// The web console page: polls /api/vms once a second, drives VMs through
// /api/vms/{id}/{action}, and shows the selected VM's serial console (xterm.js
// over a WebSocket carrying raw bytes both ways) and its live figures.
// Plain JavaScript served as is: the page is small and needs no build step.
import { Terminal } from '/vendor/xterm.mjs';

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

let images = [];
let vms = [];
let selected = null;
let consoleState = null; // { id, term, ws }

function showMessage(text, kind = 'error') {
  const m = $('message');
  m.textContent = text;
  m.className = `message ${kind === 'info' ? 'info' : ''}`;
  m.hidden = false;
  clearTimeout(showMessage.timer);
  showMessage.timer = setTimeout(() => { m.hidden = true; }, 8000);
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    location.href = '/login';
    throw new Error('logged out');
  }
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error(data && data.error ? data.error : `${method} ${path}: ${res.status}`);
  return data;
}

function formatUptime(sec) {
  if (sec === undefined) return '—';
  const s = Math.floor(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}

function formatRate(v) {
  if (v === undefined) return '—';
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)} M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k`;
  return `${Math.round(v)}`;
}

const formatMib = (bytes) => (bytes === undefined ? '—' : `${(bytes / 2 ** 20).toFixed(1)} MiB`);
const lastSample = (vm) => vm.samples[vm.samples.length - 1] ?? {};

/** The buttons a VM in this state offers. */
function actionsFor(vm) {
  switch (vm.state) {
    case 'created': return ['start', 'stop'];
    case 'running': return ['pause', 'stop'];
    case 'paused': return ['resume', 'stop'];
    case 'starting': case 'stopping': return [];
    default: return ['remove'];
  }
}

function actionButton(vm, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = action[0].toUpperCase() + action.slice(1);
  b.dataset.action = action;
  b.dataset.vm = vm.id;
  b.addEventListener('click', (e) => {
    e.stopPropagation();
    void runAction(vm.id, action, b);
  });
  return b;
}

async function runAction(id, action, button) {
  if (button) button.disabled = true;
  try {
    if (action === 'remove') {
      await api('DELETE', `/api/vms/${id}`);
      if (selected === id) select(null);
    } else {
      await api('POST', `/api/vms/${id}/${action}`);
    }
  } catch (e) {
    showMessage(e.message);
  } finally {
    await refresh();
  }
}

function renderTable() {
  const rows = $('vm-rows');
  rows.replaceChildren();
  $('no-vms').hidden = vms.length > 0;
  for (const vm of vms) {
    const tr = document.createElement('tr');
    tr.dataset.vm = vm.id;
    if (vm.id === selected) tr.classList.add('selected');
    const s = lastSample(vm);
    const cells = [
      vm.name,
      null,
      vm.engine,
      String(vm.cpus),
      `${vm.memMib} MiB`,
      formatUptime(vm.uptimeSec),
      vm.state === 'running' || vm.state === 'paused' ? formatRate(s.exitsPerSec) : '—',
      vm.state === 'running' || vm.state === 'paused' ? formatMib(s.rssBytes) : '—',
    ];
    cells.forEach((text, i) => {
      const td = document.createElement('td');
      if (i === 1) {
        const badge = document.createElement('span');
        badge.className = `state ${vm.state}`;
        badge.textContent = vm.state;
        td.append(badge);
        td.className = 'state-cell';
      } else {
        td.textContent = text;
        if (i >= 3) td.classList.add('num');
      }
      tr.append(td);
    });
    const td = document.createElement('td');
    td.className = 'actions';
    for (const a of actionsFor(vm)) td.append(actionButton(vm, a));
    tr.append(td);
    tr.addEventListener('click', () => select(vm.id));
    rows.append(tr);
  }
}

function renderDetail() {
  const vm = vms.find((v) => v.id === selected);
  $('detail').hidden = !vm;
  if (!vm) return;
  $('detail-title').textContent = `${vm.name} (${vm.id})`;
  const st = $('detail-state');
  st.className = `state ${vm.state}`;
  st.textContent = vm.state;
  const actions = $('detail-actions');
  actions.replaceChildren(...actionsFor(vm).map((a) => actionButton(vm, a)));
  const reason = $('detail-reason');
  reason.hidden = !vm.reason;
  reason.textContent = vm.reason ? `${vm.state === 'crashed' ? 'Crashed: ' : vm.state === 'failed' ? 'Failed: ' : ''}${vm.reason}` : '';
  reason.className = `reason ${vm.state === 'crashed' || vm.state === 'failed' ? 'bad' : ''}`;

  const s = lastSample(vm);
  const figures = [
    ['Image', vm.image],
    ['Engine', vm.engine],
    ['vCPUs', String(vm.cpus)],
    ['Guest RAM', `${vm.memMib} MiB`],
    ['Uptime', formatUptime(vm.uptimeSec)],
    ['Exits/s', formatRate(s.exitsPerSec)],
    ...(s.instructionsPerSec !== undefined ? [['Instructions/s', formatRate(s.instructionsPerSec)]] : []),
    ['VMM RSS', formatMib(s.rssBytes)],
    ['VMM pid', vm.pid !== undefined ? String(vm.pid) : '—'],
  ];
  $('figures').replaceChildren(...figures.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    return [dt, dd];
  }));
  drawChart(vm.samples);
}

/** Two series over the kept samples, each on its own scale. */
function drawChart(samples) {
  const canvas = $('chart');
  const ratio = window.devicePixelRatio || 1;
  const w = 320, h = 160;
  if (canvas.width !== w * ratio) {
    canvas.width = w * ratio;
    canvas.height = h * ratio;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 6, r: 6, t: 18, b: 6 };
  ctx.strokeStyle = '#eef0f3';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + ((h - pad.t - pad.b) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.l, y);
    ctx.lineTo(w - pad.r, y);
    ctx.stroke();
  }
  const series = [
    { key: 'exitsPerSec', color: '#2f5bd3', label: (m) => `max ${formatRate(m)} exits/s` },
    { key: 'rssBytes', color: '#d4860b', label: (m) => `max ${formatMib(m)}` },
  ];
  const n = 120;
  ctx.font = '11px system-ui, sans-serif';
  series.forEach((sr, si) => {
    const pts = samples.map((s, i) => [i, s[sr.key]]).filter(([, v]) => v !== undefined);
    const max = Math.max(1, ...pts.map(([, v]) => v));
    ctx.fillStyle = sr.color;
    ctx.fillText(sr.label(max), si === 0 ? pad.l : w / 2, 12);
    if (pts.length < 2) return;
    const offset = n - samples.length;
    ctx.strokeStyle = sr.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    pts.forEach(([i, v], k) => {
      const x = pad.l + ((w - pad.l - pad.r) * (offset + i)) / (n - 1);
      const y = h - pad.b - ((h - pad.t - pad.b) * v) / max;
      if (k === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  });
}

function select(id) {
  selected = id;
  if (!consoleState || consoleState.id !== id) openConsole(id);
  renderTable();
  renderDetail();
}

function openConsole(id) {
  if (consoleState) {
    consoleState.ws.close();
    consoleState.term.dispose();
    consoleState = null;
  }
  if (id === null) return;
  const term = new Terminal({
    convertEol: false,
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    fontSize: 13,
    scrollback: 5000,
    theme: { background: '#111418' },
  });
  const el = $('terminal');
  el.replaceChildren();
  term.open(el);
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/vms/${encodeURIComponent(id)}/console`);
  ws.binaryType = 'arraybuffer';
  ws.addEventListener('message', (e) => term.write(new Uint8Array(e.data)));
  ws.addEventListener('close', () => {
    if (consoleState && consoleState.ws === ws) term.write('\r\n\x1b[2m[console closed]\x1b[0m\r\n');
  });
  const encoder = new TextEncoder();
  term.onData((data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
  });
  term.focus();
  consoleState = { id, term, ws };
}

async function refresh() {
  try {
    const data = await api('GET', '/api/vms');
    vms = data.vms;
  } catch (e) {
    if (e.message !== 'logged out') showMessage(`cannot reach the console server: ${e.message}`);
    return;
  }
  if (selected !== null && !vms.some((v) => v.id === selected)) select(null);
  renderTable();
  renderDetail();
}

function updateImageFields() {
  const image = images.find((i) => i.id === $('image').value);
  if (!image) return;
  $('custom-fields').hidden = image.id !== 'custom';
  const note = $('image-note');
  note.textContent = image.available ? image.note : `Unavailable: ${image.note}`;
  note.className = `note ${image.available ? '' : 'unavailable'}`;
  $('engine').value = image.engine;
  $('create').disabled = !image.available;
}

async function loadImages() {
  images = await api('GET', '/api/images');
  const sel = $('image');
  sel.replaceChildren(...images.map((i) => {
    const o = document.createElement('option');
    o.value = i.id;
    o.textContent = i.available ? i.label : `${i.label} (unavailable)`;
    return o;
  }));
  const firstAvailable = images.find((i) => i.available);
  if (firstAvailable) sel.value = firstAvailable.id;
  updateImageFields();
}

async function createVm(e) {
  e.preventDefault();
  const image = $('image').value;
  const body = {
    image,
    cpus: Number($('cpus').value),
    memMib: Number($('memory').value),
    engine: $('engine').value,
    start: $('start-now').checked,
  };
  const name = $('name').value.trim();
  if (name) body.name = name;
  const cmdline = $('cmdline').value.trim();
  if (cmdline) body.cmdline = cmdline;
  if (image === 'custom') {
    body.kernelPath = $('kernel').value.trim();
    const initrd = $('initrd').value.trim();
    if (initrd) body.initrdPath = initrd;
  }
  const disks = $('disks').value.split(',').map((d) => d.trim()).filter((d) => d);
  if (disks.length > 0) body.disks = disks;
  const button = $('create');
  button.disabled = true;
  try {
    const vm = await api('POST', '/api/vms', body);
    if (vm.state === 'failed') showMessage(`${vm.name} could not be created: ${vm.reason}`);
    else showMessage(`${vm.name} created`, 'info');
    await refresh();
    select(vm.id);
  } catch (err) {
    showMessage(err.message);
  } finally {
    button.disabled = false;
    updateImageFields();
  }
}

$('image').addEventListener('change', updateImageFields);
$('create-form').addEventListener('submit', createVm);
await loadImages().catch((e) => showMessage(e.message));
await refresh();
setInterval(refresh, POLL_MS);
