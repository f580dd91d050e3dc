// Bar charts drawn with uPlot from the Plotly spec the Python side builds
// (explorer/charts.py: kl_bar_spec): one bar trace over categories, a colour per bar
// (marker.color), its hovertemplate, horizontal line shapes with their labels (annotations
// at the right end of the line), a title and a y axis title. The y axis starts at 0.
// x is drawn as the bar's index 0..N-1, its tick labels the categories, thinned to fit.

import {
  AXIS_LABEL_PX,
  element,
  FONT_FAMILY,
  format,
  GRID,
  INK,
  plotlyDash,
  tickLabels,
  X_AXIS_PX,
  Y_AXIS_PX,
} from "./lines.mjs";

const BAR_COLOR = "#636efa"; // Plotly's first colour, for a trace without marker.color
const BAR_WIDTH = 0.8; // of a category: Plotly's default bargap is 0.2
const TICK_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];
const LABEL_FONT_PX = 10;

/** Whether this module can draw the figure: a single bar trace. */
export function isBars(figure) {
  return figure.data.length === 1 && figure.data[0].type === "bar";
}

/** "%{x}: %{y:.3f} nats<extra></extra>" -> "z3: 0.123 nats". */
function hoverText(template, x, y) {
  if (!template) return `${x}: ${format(y)}`;
  return template
    .replace(/<extra>.*?<\/extra>/g, "")
    .replace(/%\{([xy])(?::\.(\d+)f)?[^}]*\}/g, (_, key, digits) => {
      const value = key === "x" ? x : y;
      if (typeof value !== "number") return String(value);
      return digits === undefined ? format(value) : value.toFixed(Number(digits));
    });
}

/** The y range: from 0 to the tallest bar or line, 5 % above it (Plotly's autorange). */
function yRange(figure) {
  return (u, min, max) => {
    const lines = (figure().layout.shapes || []).flatMap((s) => [s.y0, s.y1]);
    const top = Math.max(0, max ?? 0, ...lines.filter(Number.isFinite));
    return [0, top > 0 ? 1.05 * top : 1];
  };
}

/** A one-trace bar figure, drawn with uPlot into `host`, updated with update(). */
export class BarFigure {
  constructor(host, figure) {
    this.host = host;
    this.figure = figure;
    host.replaceChildren();
    host.classList.add("lines");
    this.title = element("div", "lines-title");
    this.cell = element("div", "lines-cell");
    this.tip = element("div", "lines-tip");
    this.tip.hidden = true;
    host.append(this.title, this.cell);
    this.build();
    this.update(figure);
    this.resizer = new ResizeObserver(() => this.resized());
    this.resizer.observe(this.cell);
  }

  /** Whether `figure` can be drawn into this chart: the same number of bars and axes. */
  fits(figure) {
    return isBars(figure) && this.shapeOf(figure) === this.shape;
  }

  shapeOf(figure) {
    const { layout } = figure;
    return JSON.stringify([figure.data[0].x, layout.yaxis, layout.height, layout.margin]);
  }

  destroy() {
    this.resizer.disconnect();
    this.plot.destroy();
    this.host.replaceChildren();
    this.host.classList.remove("lines");
  }

  build() {
    const { layout } = this.figure;
    this.shape = this.shapeOf(this.figure);
    this.labels = this.figure.data[0].x.map(String);
    const margin = layout.margin || {};
    this.height =
      Math.max(80, (layout.height || 450) - (margin.t ?? 100) - (margin.b ?? 80)) + X_AXIS_PX;
    this.plot = new uPlot(this.options(), [[]], this.cell);
    this.plot.over.addEventListener("mouseleave", () => (this.tip.hidden = true));
    this.cell.append(this.tip);
  }

  options() {
    const font = `12px ${FONT_FAMILY}`;
    const label = this.figure.layout.yaxis?.title?.text;
    const longest = Math.max(1, ...this.labels.map((l) => l.length));
    return {
      width: Math.max(100, this.cell.clientWidth || this.host.clientWidth || 300),
      height: this.height,
      padding: [8, 12, 0, 0],
      legend: { show: false },
      cursor: { x: false, y: false, points: { show: false }, drag: { x: false, y: false } },
      scales: {
        x: { time: false, range: (u) => [-0.5, u.data[0].length - 0.5] },
        y: { range: yRange(() => this.figure) },
      },
      axes: [
        {
          stroke: INK,
          font,
          grid: { show: false },
          ticks: { show: false },
          size: X_AXIS_PX,
          // Whole indices only, far enough apart for the longest label.
          incrs: TICK_STEPS,
          space: 7 * longest + 10,
          values: (u, splits) => splits.map((i) => this.labels[i] ?? ""),
        },
        {
          stroke: INK,
          font,
          grid: { stroke: GRID, width: 1 },
          ticks: { show: false },
          values: tickLabels,
          // As wide as its tick labels: a lone plot has no neighbour to line up with.
          size: (u, values) => {
            const chars = Math.max(1, ...(values || []).map((v) => String(v).length));
            return Math.min(Y_AXIS_PX, 7 * chars + 14) + (label ? AXIS_LABEL_PX : 0);
          },
          ...(label ? { label, labelSize: AXIS_LABEL_PX, labelFont: font, labelGap: 0 } : {}),
        },
      ],
      series: [
        {},
        {
          label: this.figure.data[0].name || "",
          width: 0,
          fill: BAR_COLOR,
          points: { show: false },
          // One fill per bar, from marker.color (a list, or one colour for all).
          paths: uPlot.paths.bars({
            size: [BAR_WIDTH, Infinity],
            disp: { fill: { values: (u) => this.colors(u.data[0].length) } },
          }),
        },
      ],
      hooks: {
        draw: [(u) => this.drawLines(u)],
        setCursor: [(u) => this.hover(u)],
      },
    };
  }

  colors(count) {
    const color = this.figure.data[0].marker?.color ?? BAR_COLOR;
    return Array.from({ length: count }, (_, i) => (Array.isArray(color) ? color[i] : color));
  }

  update(figure) {
    if (!this.fits(figure)) {
      // Another bar count (or axis): a new plot, the data drawn fresh.
      this.plot.destroy();
      this.figure = figure;
      this.build();
    }
    this.figure = figure;
    const { layout } = figure;
    this.title.textContent = layout.title?.text || "";
    this.title.hidden = !this.title.textContent;
    if (layout.title?.font?.size) this.title.style.fontSize = `${layout.title.font.size}px`;
    const ys = figure.data[0].y.map((v) => (v == null || !Number.isFinite(v) ? null : v));
    this.plot.setData([ys.map((_, i) => i), ys]);
  }

  /** Horizontal line shapes across the plot, and the annotations labelling them. */
  drawLines(u) {
    const { layout } = this.figure;
    const { ctx, bbox } = u;
    const ratio = uPlot.pxRatio;
    const xAt = (value, ref) =>
      (ref || "x").endsWith(" domain") || ref === "paper"
        ? bbox.left + value * bbox.width
        : u.valToPos(value, "x", true);
    ctx.save();
    for (const shape of (layout.shapes || []).filter((s) => s.type === "line")) {
      if (shape.yref && shape.yref !== "y") continue; // only data-valued heights
      const width = shape.line?.width ?? 2;
      ctx.strokeStyle = shape.line?.color || "#444";
      ctx.lineWidth = width * ratio;
      ctx.setLineDash(plotlyDash(shape.line?.dash, width));
      ctx.beginPath();
      ctx.moveTo(xAt(shape.x0, shape.xref), u.valToPos(shape.y0, "y", true));
      ctx.lineTo(xAt(shape.x1, shape.xref), u.valToPos(shape.y1, "y", true));
      ctx.stroke();
    }
    const placed = []; // [left, top, right, bottom] of the labels drawn so far
    for (const note of layout.annotations || []) {
      if (note.yref !== "y" || !note.text) continue;
      const size = (note.font?.size ?? LABEL_FONT_PX) * ratio;
      ctx.font = `${size}px ${FONT_FAMILY}`;
      const width = ctx.measureText(note.text).width;
      const anchor = { right: 1, center: 0.5 }[note.xanchor] ?? 0;
      const below = note.yanchor === "top";
      const line = u.valToPos(note.y, "y", true);
      const top = below ? line + 2 * ratio : line - 2 * ratio - size;
      let left = xAt(note.x, note.xref) - anchor * width;
      // Two lines close together (the threshold and the free-bits floor): their labels side
      // by side, the later one to the left, rather than drawn over each other.
      for (const box of placed) {
        if (left < box[2] && left + width > box[0] && top < box[3] && top + size > box[1]) {
          left = box[0] - width - 8 * ratio;
        }
      }
      placed.push([left, top, left + width, top + size]);
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      // A light box behind keeps the label legible over the bars.
      ctx.fillStyle = "rgba(255, 255, 255, 0.8)";
      ctx.fillRect(left - 2 * ratio, top, width + 4 * ratio, size + ratio);
      ctx.fillStyle = note.font?.color || INK;
      ctx.fillText(note.text, left, top);
    }
    ctx.restore();
  }

  hover(u) {
    const { idx, left, top } = u.cursor;
    const value = idx == null ? null : u.data[1][idx];
    if (value == null || left < 0) {
      this.tip.hidden = true;
      return;
    }
    const trace = this.figure.data[0];
    this.tip.textContent = hoverText(trace.hovertemplate, trace.x[idx], value);
    this.tip.hidden = false;
    const x = u.bbox.left / uPlot.pxRatio + left;
    const flip = left > u.bbox.width / uPlot.pxRatio / 2;
    this.tip.style.left = flip ? "" : `${x + 12}px`;
    this.tip.style.right = flip ? `${u.width - x + 12}px` : "";
    this.tip.style.top = `${top + 8}px`;
  }

  resized() {
    const width = Math.round(this.cell.clientWidth);
    if (width > 0 && width !== this.plot.width) {
      this.plot.setSize({ width, height: this.height });
    }
  }
}
