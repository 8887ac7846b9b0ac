// "Try it": run a model of the device on a file (the raw body, docs/api.md: image/jpeg, png,
// webp or audio/wav for the pipelines ocr, face-detect and vad-segments) or on a JSON tensor
// request. Text and boxes are drawn over the image; speech segments on a time line.
import { post } from './api.js';

const $ = (id) => document.getElementById(id);
const FILE_TYPES = { 'image/jpeg': 1, 'image/png': 1, 'image/webp': 1, 'audio/wav': 1, 'audio/x-wav': 1, 'audio/wave': 1 };

export function setupTry(models) {
  const select = $('try-model');
  const names = [...new Set(models.map((m) => m.name))].sort();
  // Pipelines that take a file first: they are what a person can try with a photo or a recording.
  const first = ['ocr', 'face-detect', 'vad-segments'].filter((n) => names.includes(n));
  select.replaceChildren(...[...first, ...names.filter((n) => !first.includes(n))].map((n) => new Option(n, n)));
  $('try-form').onsubmit = (e) => {
    e.preventDefault();
    run(select.value).catch((err) => ($('try-error').textContent = err.message));
  };
}

async function run(model) {
  $('try-error').textContent = '';
  $('try-output').hidden = true;
  $('try-list').replaceChildren();
  const file = $('try-file').files[0];
  const json = $('try-json').value.trim();
  const path = `/v2/models/${encodeURIComponent(model)}/infer`;
  const started = performance.now();
  let result;
  if (file) {
    const type = file.type || (file.name.endsWith('.wav') ? 'audio/wav' : '');
    if (!FILE_TYPES[type]) throw new Error(`a ${type || 'file of unknown type'} cannot be sent: JPEG, PNG, WebP or WAV`);
    result = await post(path, file, type);
  } else if (json) {
    JSON.parse(json); // a clear message for a typo, before the device sees it
    result = await post(path, json, 'application/json');
  } else {
    throw new Error('choose a file, or write a tensor request');
  }
  $('try-time').textContent = `${Math.round(performance.now() - started)} ms`;
  const out = Object.fromEntries((result.outputs ?? []).map((o) => [o.name, o]));
  if (file && file.type.startsWith('image/') && out.boxes) await drawBoxes(file, out);
  else if (out.segments) drawSegments(out.segments, file);
  else $('try-canvas').hidden = true;
  const pre = $('try-output');
  pre.textContent = JSON.stringify(result, null, 1).slice(0, 20000);
  pre.hidden = false;
}

/** ocr: quadrilaterals [n, 4, 2] with text; face-detect: boxes [n, 4] (x0, y0, x1, y1). */
async function drawBoxes(file, out) {
  const img = await createImageBitmap(file);
  const canvas = $('try-canvas');
  const scale = Math.min(1, 960 / img.width);
  canvas.width = Math.round(img.width * scale);
  canvas.height = Math.round(img.height * scale);
  canvas.hidden = false;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  ctx.lineWidth = 2;
  ctx.font = '16px system-ui, sans-serif';
  const d = out.boxes.data, texts = out.text?.data ?? [], scores = out.scores?.data ?? [];
  const n = out.boxes.shape[0];
  const quad = out.boxes.shape.length === 3;
  const list = [];
  for (let i = 0; i < n; i++) {
    const pts = quad
      ? [0, 1, 2, 3].map((k) => [d[i * 8 + k * 2] * scale, d[i * 8 + k * 2 + 1] * scale])
      : (([x0, y0, x1, y1]) => [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])(d.slice(i * 4, i * 4 + 4).map((v) => v * scale));
    ctx.strokeStyle = '#e0402a';
    ctx.beginPath();
    pts.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.stroke();
    const label = texts[i] ?? (scores[i] !== undefined ? scores[i].toFixed(2) : '');
    if (label) {
      const [x, y] = pts[0];
      const w = ctx.measureText(label).width + 6;
      ctx.fillStyle = 'rgba(224,64,42,0.85)';
      ctx.fillRect(x, Math.max(0, y - 20), w, 20);
      ctx.fillStyle = '#fff';
      ctx.fillText(label, x + 3, Math.max(15, y - 5));
    }
    list.push(`${texts[i] ?? 'face'}${scores[i] !== undefined ? `  (${scores[i].toFixed(3)})` : ''}`);
  }
  $('try-list').replaceChildren(...(list.length ? list : ['nothing found']).map((t) => Object.assign(document.createElement('li'), { textContent: t })));
}

/** vad-segments: [n, 2] start and end in seconds, on a line as long as the clip's last segment (or the clip). */
function drawSegments(out, file) {
  const canvas = $('try-canvas');
  const d = out.data, n = out.shape[0];
  const end = Math.max(1, ...d.filter((_, i) => i % 2 === 1), file ? estimateWavSeconds(file) : 0);
  canvas.width = 800;
  canvas.height = 60;
  canvas.hidden = false;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#dde1de';
  ctx.fillRect(0, 20, 800, 20);
  ctx.fillStyle = '#2f7d5b';
  const list = [];
  for (let i = 0; i < n; i++) {
    const a = d[i * 2], b = d[i * 2 + 1];
    ctx.fillRect((a / end) * 800, 16, Math.max(2, ((b - a) / end) * 800), 28);
    list.push(`speech ${a.toFixed(2)} s - ${b.toFixed(2)} s`);
  }
  ctx.fillStyle = '#6b7570';
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillText('0 s', 2, 58);
  ctx.fillText(`${end.toFixed(1)} s`, 760, 58);
  $('try-list').replaceChildren(...(list.length ? list : ['no speech']).map((t) => Object.assign(document.createElement('li'), { textContent: t })));
}

/** 16-bit PCM WAV of 16 kHz mono is what is most often tried; a rough length is enough for the axis. */
function estimateWavSeconds(file) {
  return file.size > 44 ? (file.size - 44) / 32000 : 0;
}
