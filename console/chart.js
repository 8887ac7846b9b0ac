// A line chart drawn by hand on a <canvas>: a few series over a sliding time window, the y axis
// from 0 to a rounded maximum, sized to the element and the screen's pixel ratio.
export class LineChart {
  constructor(canvas, series, { windowMs = 5 * 60_000, unit = '' } = {}) {
    this.canvas = canvas;
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.windowMs = windowMs;
    this.unit = unit;
    this.ctx = canvas.getContext('2d');
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  /** One sample: `values[i]` for series i (null: no value, a gap). */
  add(at, values) {
    this.series.forEach((s, i) => {
      s.points.push([at, values[i] ?? null]);
      while (s.points.length && s.points[0][0] < at - this.windowMs) s.points.shift();
    });
    this.draw();
  }

  draw() {
    const { canvas, ctx } = this;
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight || 160;
    if (w === 0) return;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const style = getComputedStyle(canvas);
    const ink = style.getPropertyValue('--muted') || '#888';
    const line = style.getPropertyValue('--line') || '#ddd';
    const now = Date.now();
    let max = 0;
    for (const s of this.series) for (const [, v] of s.points) if (v !== null && v > max) max = v;
    max = niceMax(max);
    const left = 40, bottom = h - 18, top = 8, right = w - 6;
    const x = (t) => left + ((t - (now - this.windowMs)) / this.windowMs) * (right - left);
    const y = (v) => bottom - (v / max) * (bottom - top);
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = ink;
    ctx.strokeStyle = line;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (max / 4) * i;
      ctx.beginPath();
      ctx.moveTo(left, y(v));
      ctx.lineTo(right, y(v));
      ctx.stroke();
      ctx.fillText(fmt(v), 2, y(v) + 4);
    }
    ctx.fillText(`-${Math.round(this.windowMs / 60_000)} min`, left, h - 4);
    ctx.fillText('now', right - 22, h - 4);
    let legend = left + 4;
    for (const s of this.series) {
      ctx.strokeStyle = style.getPropertyValue(s.colour) || s.colour;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let pen = false;
      for (const [t, v] of s.points) {
        if (v === null) { pen = false; continue; }
        if (pen) ctx.lineTo(x(t), y(v)); else ctx.moveTo(x(t), y(v));
        pen = true;
      }
      ctx.stroke();
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      ctx.fillStyle = ctx.strokeStyle;
      const label = `${s.name} ${last === null ? '-' : fmt(last)}${this.unit}`;
      ctx.fillText(label, legend, top + 10);
      legend += ctx.measureText(label).width + 12;
    }
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  return v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '') || '0';
}
