// pixelforge studio: front-end logic (plain ES2020, no framework, no build step).
// Talks to the API described in the studio spec: GET /api/runs, POST /api/jobs plus an
// EventSource per job, GET /api/history, POST /api/png-info. Sections below: helpers and
// API access, run selection, job submission/streaming, sketch canvas, history, global keys/drop.
'use strict';

// ---------------------------------------------------------------- helpers & API
const $ = (sel) => document.querySelector(sel);
const $$ = (sel) => Array.from(document.querySelectorAll(sel));
const TOKEN = new URLSearchParams(location.search).get('token');
const png = (b64) => 'data:image/png;base64,' + b64;

// Paths are relative ("api/...") so the page also works behind a path prefix.
async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  let body = opts.body;
  if (body !== undefined && typeof body !== 'string') {
    body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(path, { ...opts, headers, body });
  const text = await res.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* keep raw text */ }
  if (!res.ok) throw new Error(detailText(data) || `HTTP ${res.status}`);
  return data;
}

// EventSource cannot send headers, hence the query form of the token.
function eventsUrl(id) {
  const q = TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : '';
  return `api/jobs/${encodeURIComponent(id)}/events${q}`;
}

// FastAPI errors: {"detail": "text"} or, for 422, {"detail": [{loc: [...], msg}, ...]}.
function detailText(data) {
  const d = data && typeof data === 'object' && 'detail' in data ? data.detail : data;
  if (Array.isArray(d)) {
    return d.map((e) => {
      if (!e || !e.msg) return String(e);
      const loc = (e.loc || []).filter((p) => p !== 'body').join('.');
      return loc ? `${loc}: ${e.msg}` : e.msg;
    }).join('; ');
  }
  if (typeof d === 'string') return d;
  return d ? JSON.stringify(d) : '';
}

function make(tag, cls, props = {}) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  return Object.assign(el, props);
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('could not read image'));
    img.src = src;
  });
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0];
const setStatus = (text) => { $('#status').textContent = text; };

// --------------------------------------------------------------------- state
const state = {
  runs: [],
  run: null,          // currently selected run object from /api/runs
  busy: false,        // a job from this page is queued or running
  job: null,          // id of the current job
  kind: null,         // kind of the current job
  es: null,           // its EventSource
  seedUsed: false,    // the seed in #seed was already used by a job (for the re-roll rule)
};

// Fields each job kind accepts besides run and the kind-specific ones; the server
// rejects unknown fields, so we intersect this with the run's "settings".
const KIND_FIELDS = {
  generate: ['n', 'seed', 'label', 'steps', 'guidance_scale', 'sampler', 'temperature'],
  img2img: ['n', 'seed', 'label', 'steps', 'guidance_scale'],
  inpaint: ['n', 'seed', 'label', 'steps'],
  interpolate: ['label', 'steps'],
};
const FIELD_INPUT = {
  n: '#n', seed: '#seed', label: '#label', steps: '#steps',
  guidance_scale: '#guidance', sampler: '#sampler', temperature: '#temperature',
};
const OP_BUTTONS = ['generate', 'img2img', 'inpaint', 'interpolate'];

// ------------------------------------------------------------- run selection
async function loadRuns() {
  try {
    state.runs = await api('api/runs');
  } catch (e) {
    setStatus(`error: ${e.message}`);
    return;
  }
  const sel = $('#run');
  sel.replaceChildren(...state.runs.map((r) => {
    const [h, w] = r.image_shape.slice(-2);
    const cond = r.num_classes ? 'cond' : 'uncond';
    return make('option', '', { value: r.name, textContent: `${r.name} (${r.family}, ${h}×${w}, ${cond})` });
  }));
  if (!state.runs.length) setStatus('error: the server has no runs');
  applyRun();
}

function applyRun() {
  const run = state.runs.find((r) => r.name === $('#run').value);
  const prev = state.run;
  state.run = run || null;
  if (!run) { setBusy(state.busy); return; }
  const shape = run.image_shape.join('×');
  const cond = run.num_classes ? `conditional (${run.num_classes} classes)` : 'unconditional';
  $('#run-info').textContent = `${run.family} · ${shape} · ${cond}`;

  for (const el of $$('[data-setting]')) el.hidden = !run.settings.includes(el.dataset.setting);

  const names = run.class_names || Array.from({ length: run.num_classes || 0 }, (_, i) => String(i));
  $('#label').replaceChildren(make('option', '', { value: '', textContent: 'any (cycling)' }),
    ...names.map((name, i) => make('option', '', { value: String(i), textContent: name })));

  const d = run.defaults || {};
  if (d.steps != null) $('#steps').value = d.steps;
  if (d.guidance_scale != null) $('#guidance').value = d.guidance_scale;
  if (d.temperature != null) $('#temperature').value = d.temperature;
  if (d.n != null) $('#n').value = d.n;
  if (d.sampler) $('#sampler').value = d.sampler;

  $('#brush-color').value = run.background === 'white' ? '#000000' : '#ffffff';
  const [h, w] = run.image_shape.slice(-2);
  const sameCanvas = prev && prev.background === run.background &&
    String(prev.image_shape.slice(-2)) === String([h, w]);
  if (!sameCanvas) resetCanvas(w, h);
  setBusy(state.busy);
}

// Enable the operation buttons the run supports unless a job is in flight.
function setBusy(busy) {
  state.busy = busy;
  const ops = state.run ? state.run.operations : [];
  for (const op of OP_BUTTONS) $('#' + op).disabled = busy || !ops.includes(op);
  $('#cancel').disabled = !busy;
}

// ------------------------------------------------------------- jobs
function collectSettings(kind) {
  const out = {};
  for (const field of KIND_FIELDS[kind]) {
    if (!state.run.settings.includes(field)) continue;
    const raw = $(FIELD_INPUT[field]).value.trim();
    if (raw === '') continue;                  // empty: let the server use its default
    if (field === 'sampler') { out.sampler = raw; continue; }
    const num = Number(raw);
    if (Number.isFinite(num)) out[field] = field === 'label' ? Math.trunc(num) : num;
  }
  return out;
}

async function startJob(kind, extra = {}) {
  if (state.busy || !state.run) return;
  // Seed rule: unless locked, every job after the first with this seed rolls a new one.
  if (kind !== 'interpolate' && state.run.settings.includes('seed')) {
    if (!$('#seed-lock').checked && (state.seedUsed || $('#seed').value === '')) {
      $('#seed').value = randomSeed();
    }
    state.seedUsed = true;
  }
  const body = { kind, run: state.run.name, ...collectSettings(kind), ...extra };
  setBusy(true);
  document.body.dataset.previews = '0';
  document.body.dataset.job = '';
  $('#progress').removeAttribute('value');     // indeterminate until the first step
  setStatus('queued');
  let res;
  try {
    res = await api('api/jobs', { method: 'POST', body });
  } catch (e) {
    setStatus(`error: ${e.message}`);
    $('#progress').value = 0;
    setBusy(false);
    return;
  }
  state.job = res.id;
  state.kind = kind;
  document.body.dataset.job = res.id;
  setStatus(`queued: position ${res.position ?? 0}`);
  listen(res.id);
}

function listen(id) {
  const es = new EventSource(eventsUrl(id));
  state.es = es;
  // Ignore events of a stream that is no longer the current job's.
  const on = (name, fn) => es.addEventListener(name, (ev) => {
    if (state.job === id && state.es === es) fn(JSON.parse(ev.data));
  });
  on('queued', (d) => setStatus(`queued: position ${d.position}`));
  on('progress', (d) => {
    document.body.dataset.previews = String(Number(document.body.dataset.previews || 0) + 1);
    setStatus(`running: step ${d.step} / ${d.total}`);
    $('#progress').max = d.total || 1;
    $('#progress').value = d.step || 0;
    $('#results').replaceChildren(...(d.previews || []).map((b64) =>
      make('img', 'preview', { src: png(b64), alt: 'preview' })));
  });
  on('done', finish);
  on('cancelled', finish);
  on('failed', finish);
  // Network error or the stream ended without a final event: ask for the job. While the
  // EventSource retries on its own we only check; once it gave up (CLOSED) we poll.
  es.onerror = async () => {
    if (state.es !== es) return;
    try {
      const job = await api(`api/jobs/${encodeURIComponent(id)}`);
      if (state.es !== es) return;
      if (['done', 'cancelled', 'failed'].includes(job.status)) finish(job);
      else if (es.readyState === EventSource.CLOSED) {
        setStatus(job.status === 'queued' ? 'queued' : `running: step ${job.step ?? 0} / ${job.total ?? '?'}`);
        setTimeout(es.onerror, 1000);
      }
    } catch (e) {
      if (state.es === es) { es.close(); endJob(`error: ${e.message}`); }
    }
  };
}

// Final event (or job record) of the current job: show images, unlock the page.
function finish(d) {
  if (d.status === 'failed') { endJob(`error: ${d.detail || 'job failed'}`); return; }
  const images = d.images || [];
  showResults(images);
  if ((d.kind || state.kind) === 'interpolate') showStrip(images);
  if (d.status === 'done') {
    const secs = d.seconds != null ? ` in ${Number(d.seconds).toFixed(1)} s` : '';
    endJob(`done: ${images.length} image${images.length === 1 ? '' : 's'}${secs}`, true);
  } else {
    endJob(`cancelled: ${images.length} partial image${images.length === 1 ? '' : 's'}`);
  }
}

function endJob(statusText, complete = false) {
  if (state.es) state.es.close();              // otherwise EventSource reconnects
  state.es = null;
  const p = $('#progress');
  if (complete) { p.max = 1; p.value = 1; } else if (!p.hasAttribute('value')) p.value = 0;
  setStatus(statusText);
  setBusy(false);
  loadHistory();
}

async function cancelJob() {
  if (!state.busy || !state.job) return;
  try {
    await api(`api/jobs/${encodeURIComponent(state.job)}/cancel`, { method: 'POST' });
  } catch (e) {
    if (state.busy) setStatus(`error: ${e.message}`);
  }
}

function showResults(images, name = document.body.dataset.job || 'image') {
  $('#results').replaceChildren(...images.map((b64, i) => {
    const item = make('div', 'result-item');
    const img = make('img', 'result', { src: png(b64), alt: 'result' });
    const btn = make('button', 'to-canvas', { type: 'button', textContent: 'to canvas',
      title: 'Put this image into the sketch canvas' });
    btn.addEventListener('click', () => drawImageToSketch(img.src));
    // the PNG carries its settings: dropping it back on the page restores them
    const save = make('a', 'save', { href: img.src, download: `pixelforge-${name}-${i}.png`,
      textContent: 'save', title: 'Download this PNG (its settings are embedded)' });
    const actions = make('div', 'result-actions');
    actions.append(btn, save);
    item.append(img, actions);
    return item;
  }));
}

function showStrip(images) {
  $('#strip').replaceChildren(...images.map((b64, i) =>
    make('img', 'frame', { src: png(b64), alt: `frame ${i + 1}` })));
}

// ------------------------------------------------------------- sketch canvas
const sketch = $('#sketch');
const mask = $('#mask');
const canvasState = { tool: 'brush', stroke: null, undo: new Map([[sketch, []], [mask, []]]) };
const UNDO_LIMIT = 30;
const bgColor = () => (state.run && state.run.background === 'white' ? '#ffffff' : '#000000');
const activeCanvas = () => ($('#mask-mode').checked ? mask : sketch);

// Internal resolution is 8× the model's; CSS keeps it at ~256 px wide, the server downsamples.
function resetCanvas(w, h) {
  for (const c of [sketch, mask]) { c.width = w * 8; c.height = h * 8; }
  fillBackground();
  mask.getContext('2d').clearRect(0, 0, mask.width, mask.height);
  canvasState.undo.forEach((stack) => { stack.length = 0; });
}

function fillBackground() {
  const ctx = sketch.getContext('2d');
  ctx.fillStyle = bgColor();
  ctx.fillRect(0, 0, sketch.width, sketch.height);
}

function pushUndo(c) {
  const stack = canvasState.undo.get(c);
  stack.push(c.getContext('2d').getImageData(0, 0, c.width, c.height));
  if (stack.length > UNDO_LIMIT) stack.shift();
}

function toCanvasPoint(e) {
  const r = sketch.getBoundingClientRect();
  return { x: (e.clientX - r.left) * sketch.width / r.width,
    y: (e.clientY - r.top) * sketch.height / r.height };
}

// One round-capped segment a->b on canvas c with the current tool.
function paint(c, a, b) {
  const ctx = c.getContext('2d');
  const scale = c.width / sketch.getBoundingClientRect().width;  // CSS px -> canvas px
  const eraser = canvasState.tool === 'eraser';
  ctx.save();
  let colour = eraser ? bgColor() : $('#brush-color').value;
  if (c === mask) {
    // Mask is opaque red at CSS opacity; erasing removes paint instead of covering it.
    colour = '#ff0000';
    ctx.globalCompositeOperation = eraser ? 'destination-out' : 'source-over';
  }
  ctx.strokeStyle = ctx.fillStyle = colour;
  ctx.lineWidth = Number($('#brush-size').value) * scale;
  ctx.lineCap = ctx.lineJoin = 'round';
  ctx.beginPath();
  if (a.x === b.x && a.y === b.y) {            // a click: draw a dot (zero-length lines may not)
    ctx.arc(a.x, a.y, ctx.lineWidth / 2, 0, Math.PI * 2);
    ctx.fill();
  } else {
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }
  ctx.restore();
}

// Listen on the wrapper: #mask sits on top of #sketch and receives the pointer.
function setupCanvas() {
  const wrap = $('#canvas-wrap');
  wrap.addEventListener('pointerdown', (e) => {
    if (e.pointerType === 'mouse' && e.button !== 0) return;
    e.preventDefault();
    const c = activeCanvas();
    pushUndo(c);
    try { wrap.setPointerCapture(e.pointerId); } catch (err) { /* synthetic pointer */ }
    const p = toCanvasPoint(e);
    canvasState.stroke = { c, last: p };
    paint(c, p, p);
  });
  wrap.addEventListener('pointermove', (e) => {
    const s = canvasState.stroke;
    if (!s) return;
    const p = toCanvasPoint(e);
    paint(s.c, s.last, p);
    s.last = p;
  });
  for (const t of ['pointerup', 'pointercancel', 'lostpointercapture']) {
    wrap.addEventListener(t, () => { canvasState.stroke = null; });
  }

  const setTool = (tool) => {
    canvasState.tool = tool;
    $('#tool-brush').classList.toggle('active', tool === 'brush');
    $('#tool-eraser').classList.toggle('active', tool === 'eraser');
  };
  $('#tool-brush').addEventListener('click', () => setTool('brush'));
  $('#tool-eraser').addEventListener('click', () => setTool('eraser'));
  $('#mask-mode').addEventListener('change', () =>
    wrap.classList.toggle('masking', $('#mask-mode').checked));

  // Undo and clear act on the canvas strokes currently go to (mask in mask mode).
  $('#undo').addEventListener('click', () => {
    const c = activeCanvas();
    const snap = canvasState.undo.get(c).pop();
    if (snap) c.getContext('2d').putImageData(snap, 0, 0);
  });
  $('#clear').addEventListener('click', () => {
    const c = activeCanvas();
    pushUndo(c);
    if (c === mask) mask.getContext('2d').clearRect(0, 0, mask.width, mask.height);
    else fillBackground();
  });

  $('#upload').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const url = URL.createObjectURL(file);
    try { await drawImageToSketch(url); } catch (err) { setStatus(`error: ${err.message}`); }
    URL.revokeObjectURL(url);
    e.target.value = '';                       // allow re-uploading the same file
  });

  const strength = $('#strength');
  strength.addEventListener('input', () => { $('#strength-value').textContent = strength.value; });
}

// Fit an image into the sketch (letterboxed on the background colour); undoable.
async function drawImageToSketch(src) {
  const img = await loadImage(src);
  pushUndo(sketch);
  fillBackground();
  const ctx = sketch.getContext('2d');
  const k = Math.min(sketch.width / img.width, sketch.height / img.height);
  const w = img.width * k;
  const h = img.height * k;
  ctx.imageSmoothingEnabled = k < 1;           // keep tiny generated images blocky when enlarged
  ctx.drawImage(img, (sketch.width - w) / 2, (sketch.height - h) / 2, w, h);
  ctx.imageSmoothingEnabled = true;
}

// Mask as sent to the server: black everywhere, white where any mask paint is.
function maskPNG() {
  const out = make('canvas', '', { width: mask.width, height: mask.height });
  const ctx = out.getContext('2d');
  ctx.drawImage(mask, 0, 0);
  ctx.globalCompositeOperation = 'source-in';  // recolour the painted pixels white
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.globalCompositeOperation = 'destination-over';  // black behind them
  ctx.fillStyle = '#000000';
  ctx.fillRect(0, 0, out.width, out.height);
  return out.toDataURL('image/png');
}

function maskIsEmpty() {
  const { data } = mask.getContext('2d').getImageData(0, 0, mask.width, mask.height);
  for (let i = 3; i < data.length; i += 4) if (data[i]) return false;
  return true;
}

// ------------------------------------------------------------- history & recall
async function loadHistory() {
  let items;
  try { items = await api('api/history'); } catch (e) { return; }  // not worth an error line
  $('#history').replaceChildren(...items.map((h) => {
    const s = h.settings || {};
    const seed = h.kind === 'interpolate' ? `${s.seed_a}→${s.seed_b}` : s.seed;
    const el = make('button', 'history-item', { type: 'button', title: `job ${h.id}` });
    el.dataset.id = h.id;
    if (h.images && h.images.length) el.append(make('img', 'thumb', { src: png(h.images[0]), alt: '' }));
    const flag = h.status && h.status !== 'done' ? ` (${h.status})` : '';
    el.append(make('span', 'caption', { textContent: `${h.kind} · ${s.run || '?'} · seed ${seed ?? '-'}${flag}` }));
    el.addEventListener('click', () => {
      recall({ kind: h.kind, ...s });
      showResults(h.images || [], h.id);
      if (h.kind === 'interpolate') showStrip(h.images || []);
    });
    return el;
  }));
}

// Put a settings object (history entry or PNG metadata) back into the controls.
function recall(s) {
  if (s.run && s.run !== $('#run').value && state.runs.some((r) => r.name === s.run)) {
    $('#run').value = s.run;
    applyRun();
  }
  const set = (sel, v) => { if (v !== undefined && v !== null) $(sel).value = v; };
  set('#seed', s.seed);
  set('#steps', s.steps);
  set('#guidance', s.guidance_scale);
  set('#temperature', s.temperature);
  set('#sampler', s.sampler);
  set('#seed-a', s.seed_a);
  set('#seed-b', s.seed_b);
  if (s.kind === 'interpolate') set('#frames', s.frames ?? s.n);
  else { set('#n', s.n); set('#frames', s.frames); }
  if ('label' in s) $('#label').value = s.label == null ? '' : String(s.label);
  if (s.strength != null) {
    $('#strength').value = s.strength;
    $('#strength-value').textContent = $('#strength').value;
  }
  state.seedUsed = false;                      // the next Generate reproduces the recalled seed
}

// ------------------------------------------------------------- wiring
function setupControls() {
  $('#run').addEventListener('change', applyRun);
  $('#dice').addEventListener('click', () => { $('#seed').value = randomSeed(); state.seedUsed = false; });
  $('#seed').addEventListener('input', () => { state.seedUsed = false; });
  $('#generate').addEventListener('click', () => startJob('generate'));
  $('#cancel').addEventListener('click', cancelJob);
  $('#img2img').addEventListener('click', () => startJob('img2img', {
    image: sketch.toDataURL('image/png'), strength: Number($('#strength').value) }));
  $('#inpaint').addEventListener('click', () => {
    if (maskIsEmpty()) { setStatus('error: paint the region to regenerate in mask mode first'); return; }
    startJob('inpaint', { image: sketch.toDataURL('image/png'), mask: maskPNG() });
  });
  $('#interpolate').addEventListener('click', () => {
    const extra = {};
    for (const [key, sel] of [['seed_a', '#seed-a'], ['seed_b', '#seed-b'], ['n', '#frames']]) {
      const v = $(sel).value.trim();
      if (v !== '') extra[key] = Number(v);
    }
    startJob('interpolate', extra);
  });

  // Enter generates unless the focused element gives Enter its own meaning.
  const ENTER_OK = ['number', 'range', 'checkbox', 'radio', 'color'];
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { cancelJob(); return; }
    if (e.key !== 'Enter' || e.isComposing || e.ctrlKey || e.altKey || e.metaKey) return;
    const t = e.target;
    if (t.isContentEditable || ['TEXTAREA', 'BUTTON', 'A'].includes(t.tagName)) return;
    if (t.tagName === 'INPUT' && !ENTER_OK.includes(t.type)) return;
    e.preventDefault();
    if (!$('#generate').disabled) startJob('generate');
  });

  // Dropping a PNG anywhere restores the settings embedded in it.
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', async (e) => {
    e.preventDefault();
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (!file) return;
    try {
      const b64 = (await readAsDataURL(file)).split(',')[1] || '';   // plain base64, no data: prefix
      const res = await api('api/png-info', { method: 'POST', body: { image: b64 } });
      recall(res.settings || {});
      if (!state.busy) setStatus(`idle: restored settings from ${file.name}`);
    } catch (err) {
      setStatus(`error: ${err.message}`);
    }
  });
}

$('#seed').value = randomSeed();
setupCanvas();
setupControls();
setBusy(false);
loadRuns();
loadHistory();
