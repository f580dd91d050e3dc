// Line charts drawn with uPlot (a 50 KB canvas chart made for streaming series) from the Plotly
// specs the Python side builds (explorer/charts.py: curves_spec, schedule_spec,
// elbo_gap_spec). Only the subset those specs use is read:
//   subplots placed by their axis domains (one uPlot per (x axis, y axis) pair; an
//   `overlaying` y axis is a second scale on its base's plot, with its axis on the right),
//   titles and subplot titles (paper annotations) as HTML, axis titles as axis labels,
//   trace name / colour / dash / width / markers / "hv" steps / legend groups,
//   rangemode "tozero" and explicit ranges, line shapes, and x-anchored annotations (the
//   control-change labels) placed at their x above the plot.
// Plotly's look: white plot, light grid, its colours and dashes.

export const FONT_FAMILY = '"Open Sans", verdana, arial, sans-serif';
export const INK = "#2a3f5f"; // plotly_white's text colour
export const GRID = "#ebf0f8"; // plotly_white's grid colour
const COLORWAY = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3"];
const LABEL_ROW_PX = 13; // a row of control-change labels (charts.py LABEL_ROW_PX)
export const X_AXIS_PX = 30; // the x axis under a plot: tick labels
export const Y_AXIS_PX = 48;
export const AXIS_LABEL_PX = 18;

/** Whether uPlot can draw this figure: every trace a scatter (lines and markers). */
export function isLines(figure) {
  return figure.data.length > 0 && figure.data.every((t) => (t.type ?? "scatter") === "scatter");
}

function axisKey(ref, letter) {
  return `${letter}axis${ref.slice(1)}`; // "x" -> "xaxis", "y2" -> "yaxis2"
}

export function plotlyDash(dash, width) {
  // Plotly scales its named dashes with the line width (at least 3 px).
  const w = Math.max(width, 3) * uPlot.pxRatio;
  if (dash === "dot") return [w, w];
  if (dash === "dash") return [3 * w, 3 * w];
  if (dash === "dashdot") return [3 * w, w, w, w];
  return [];
}

/** The figure's plots: one per (x axis, base y axis) pair, with their traces and scales. */
function panelsOf(figure) {
  const { layout } = figure;
  const panels = new Map();
  figure.data.forEach((trace, i) => {
    const xref = trace.xaxis || "x";
    const yref = trace.yaxis || "y";
    const base = layout[axisKey(yref, "y")]?.overlaying || yref;
    const key = `${xref}/${base}`;
    if (!panels.has(key)) {
      const xaxis = layout[axisKey(xref, "x")] || {};
      panels.set(key, {
        xref,
        yref: base,
        xDomain: xaxis.domain || [0, 1],
        yDomain: layout[axisKey(base, "y")]?.domain || [0, 1],
        showX: !xaxis.anchor || xaxis.anchor === base,
        scales: [],
        traces: [],
      });
    }
    const panel = panels.get(key);
    if (!panel.scales.includes(yref)) panel.scales.push(yref);
    panel.traces.push(i);
  });
  return [...panels.values()];
}

/** What must stay equal for new data to be drawn into the existing plots. */
function structureOf(figure) {
  const { layout } = figure;
  const axes = Object.keys(layout)
    .filter((k) => /^[xy]axis\d*$/.test(k))
    .sort()
    .map((k) => [k, layout[k]]);
  const traces = figure.data.map(({ x, y, ...rest }) => rest);
  return JSON.stringify([traces, axes, layout.height, layout.legend, layout.showlegend]);
}

function rangeOf(axis) {
  if (Array.isArray(axis.range) && axis.range.length === 2) {
    const [lo, hi] = axis.range;
    return () => [lo, hi];
  }
  const toZero = axis.rangemode === "tozero";
  return (u, min, max) => {
    if (min == null || max == null || !Number.isFinite(min) || !Number.isFinite(max)) {
      return [0, 1];
    }
    if (!toZero) return uPlot.rangeNum(min, max, 0.1, true);
    const [lo, hi] = uPlot.rangeNum(Math.min(0, min), Math.max(0, max), 0.1, true);
    return [min >= 0 ? 0 : lo, max <= 0 ? 0 : hi];
  };
}

/** The x range: the data's, a little wider when markers would be cut at the edges. */
function xRange(markers) {
  return (u, min, max) => {
    if (min == null || max == null) return [0, 1];
    if (min === max) return [min - 1, max + 1];
    const pad = markers ? 0.02 * (max - min) : 0;
    return [min - pad, max + pad];
  };
}

function rightAxisSize(label) {
  return (u, values) => {
    const chars = Math.max(1, ...(values || []).map((v) => String(v).length));
    return 7 * chars + 14 + (label ? AXIS_LABEL_PX : 0);
  };
}

// Tick labels as Plotly writes them: a true minus, thousands grouped only from 10^4 on.
export function tickLabels(u, splits) {
  return splits.map((v) => {
    if (v == null) return "";
    const text = Math.abs(v) >= 1e4 ? v.toLocaleString("en-US") : String(+v.toPrecision(6));
    return text.replace("-", "\u2212");
  });
}

export function format(value) {
  if (value == null) return "";
  if (Number.isInteger(value)) return String(value);
  const tiny = Math.abs(value) < 1e-3;
  return Math.abs(value) >= 1e5 || tiny ? value.toPrecision(4) : String(+value.toPrecision(5));
}

/** One trace's (x, y) as ascending x, its non-finite y as null (a gap in its line). */
function table(trace) {
  let xs = trace.x;
  let ys = trace.y.map((v) => (v == null || !Number.isFinite(v) ? null : v));
  for (let i = 1; i < xs.length; i++) {
    if (!(xs[i] > xs[i - 1])) {
      const order = xs.map((_, j) => j).sort((a, b) => xs[a] - xs[b] || a - b);
      xs = order.map((j) => xs[j]);
      ys = order.map((j) => ys[j]);
      break;
    }
  }
  return [xs.slice(0, ys.length), ys.slice(0, xs.length)];
}

/** The row (0 = lowest) of a control-change label: charts.py shifts row r up 20 + 13 r px. */
function labelRow(annotation) {
  return Math.round(((annotation.yshift || 0) - 20) / LABEL_ROW_PX);
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function swatch(trace, color) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", "30");
  svg.setAttribute("height", "10");
  const line = document.createElementNS(svg.namespaceURI, "line");
  const width = trace.line?.width ?? 2;
  Object.entries({ x1: 1, y1: 5, x2: 29, y2: 5, stroke: color, "stroke-width": width }).forEach(
    ([k, v]) => line.setAttribute(k, v),
  );
  const dash = plotlyDash(trace.line?.dash, width).map((d) => d / uPlot.pxRatio);
  if (dash.length) line.setAttribute("stroke-dasharray", dash.join(","));
  svg.append(line);
  if ((trace.mode || "lines").includes("markers")) {
    const dot = document.createElementNS(svg.namespaceURI, "circle");
    const attributes = { cx: 15, cy: 5, r: 3, fill: color };
    Object.entries(attributes).forEach(([k, v]) => dot.setAttribute(k, v));
    svg.append(dot);
  }
  return svg;
}

/** A figure of line plots, drawn with uPlot into `host`, updated with update(). */
export class LineFigure {
  constructor(host, figure, syncKey) {
    this.host = host;
    this.structure = structureOf(figure);
    this.figure = figure;
    this.panels = panelsOf(figure);
    this.hidden = new Set(); // legend entries switched off
    host.replaceChildren();
    host.classList.add("lines");
    this.title = element("div", "lines-title");
    this.grid = element("div", "lines-grid");
    this.legend = element("div", "lines-legend");
    host.append(this.title, this.grid, this.legend);
    this.tip = element("div", "lines-tip");
    this.tip.hidden = true;
    this.build(syncKey);
    this.update(figure);
    this.resizer = new ResizeObserver((entries) => this.resized(entries));
    for (const panel of this.panels) this.resizer.observe(panel.cell);
  }

  fits(figure) {
    return structureOf(figure) === this.structure;
  }

  destroy() {
    this.resizer.disconnect();
    for (const panel of this.panels) panel.plot.destroy();
    this.host.replaceChildren();
    this.host.classList.remove("lines");
  }

  build(syncKey) {
    const { layout } = this.figure;
    const margin = layout.margin || {};
    const plotHeight = Math.max(120, (layout.height || 450) - (margin.t ?? 100) - (margin.b ?? 80));
    const columns = [...new Set(this.panels.map((p) => p.xDomain.join()))]
      .map((d) => d.split(",").map(Number))
      .sort((a, b) => a[0] - b[0]);
    const rows = [...new Set(this.panels.map((p) => p.yDomain.join()))]
      .map((d) => d.split(",").map(Number))
      .sort((a, b) => b[1] - a[1]);
    // fr in thousandths of the width: fractions summing under 1 would leave space unused.
    this.grid.style.gridTemplateColumns = columns
      .map(([a, b]) => `minmax(0, ${Math.round(1000 * (b - a))}fr)`)
      .join(" ");
    this.hasSubplotTitles = (layout.annotations || []).some(
      (a) => a.xref === "paper" && a.yref === "paper",
    );
    for (const panel of this.panels) {
      panel.column = columns.findIndex((c) => c.join() === panel.xDomain.join());
      panel.row = rows.findIndex((r) => r.join() === panel.yDomain.join());
      panel.top = panel.row === 0;
      panel.cell = element("div", "lines-cell");
      panel.cell.style.gridColumn = String(panel.column + 1);
      panel.cell.style.gridRow = String(panel.row + 1);
      panel.strip = element("div", "lines-labels");
      panel.heading = element("div", "lines-subtitle");
      panel.height =
        Math.max(50, Math.round((panel.yDomain[1] - panel.yDomain[0]) * plotHeight)) +
        (panel.showX ? X_AXIS_PX : 8);
      panel.cell.append(panel.strip, panel.heading);
      this.grid.append(panel.cell);
      panel.plot = new uPlot(this.options(panel, syncKey), [[]], panel.cell);
      panel.marks = element("div", "lines-marks");
      panel.plot.over.append(panel.marks);
      panel.plot.over.addEventListener("mouseenter", () => (this.active = panel));
      panel.plot.over.addEventListener("mouseleave", () => {
        this.active = null;
        this.tip.hidden = true;
      });
    }
    this.buildLegend();
  }

  options(panel, syncKey) {
    const { layout, data } = this.figure;
    const font = `12px ${FONT_FAMILY}`;
    const xaxis = layout[axisKey(panel.xref, "x")] || {};
    const markers = panel.traces.some((i) => (data[i].mode || "").includes("markers"));
    const scales = { x: { time: false, range: xaxis.range ? rangeOf(xaxis) : xRange(markers) } };
    const axes = [
      {
        stroke: INK,
        font,
        grid: { stroke: GRID, width: 1 },
        ticks: { show: false },
        size: panel.showX ? X_AXIS_PX : 4,
        values: panel.showX ? tickLabels : (u, splits) => splits.map(() => ""),
        ...(xaxis.title?.text
          ? { label: xaxis.title.text, labelSize: AXIS_LABEL_PX, labelFont: font }
          : {}),
      },
    ];
    panel.scales.forEach((ref, n) => {
      const yaxis = layout[axisKey(ref, "y")] || {};
      scales[ref] = { range: rangeOf(yaxis) };
      const label = yaxis.title?.text;
      axes.push({
        scale: ref,
        side: n === 0 ? 3 : 1,
        stroke: INK,
        font,
        grid: { show: n === 0 && yaxis.showgrid !== false, stroke: GRID, width: 1 },
        ticks: { show: false },
        values: tickLabels,
        // Left: one width for every plot, so a column's plots line up; right: as wide as
        // its tick labels.
        size: n === 0 ? Y_AXIS_PX + (label ? AXIS_LABEL_PX : 0) : rightAxisSize(label),
        ...(label ? { label, labelSize: AXIS_LABEL_PX, labelFont: font, labelGap: 0 } : {}),
      });
    });
    const series = [{}];
    for (const i of panel.traces) {
      const trace = data[i];
      const color = trace.line?.color || COLORWAY[i % COLORWAY.length];
      const width = trace.line?.width ?? 2;
      const markers = (trace.mode || "lines").includes("markers");
      series.push({
        label: trace.name || `trace ${i}`,
        scale: trace.yaxis || "y",
        stroke: color,
        width,
        dash: plotlyDash(trace.line?.dash, width),
        spanGaps: false, // null (a non-finite value) is a gap; join's alignment fill is not
        ...(trace.line?.shape === "hv" ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
        points: markers
          ? { show: true, size: trace.marker?.size ?? 6, fill: color, stroke: color, width: 0 }
          : { show: false },
      });
    }
    return {
      width: Math.max(100, panel.cell.clientWidth || this.host.clientWidth || 300),
      height: panel.height,
      padding: [8, panel.scales.length > 1 ? 0 : 12, 0, 0],
      legend: { show: false },
      cursor: {
        y: false,
        // The figure's plots share the cursor and the zoom (a drag, a double-click).
        sync: { key: syncKey },
        points: { size: 7 },
      },
      scales,
      axes,
      series,
      hooks: {
        draw: [(u) => this.drawExtras(panel, u)],
        setCursor: [(u) => this.hover(panel, u)],
        setScale: [(u, key) => key === "x" && this.zoomed(panel, u)],
      },
    };
  }

  buildLegend() {
    const { data, layout } = this.figure;
    const entries = new Map();
    data.forEach((trace, i) => {
      const key = trace.legendgroup || trace.name;
      if (trace.showlegend === false || !trace.name || entries.has(key)) return;
      entries.set(key, { trace, color: trace.line?.color || COLORWAY[i % COLORWAY.length] });
    });
    const show = layout.showlegend ?? entries.size > 1;
    this.legend.hidden = !show;
    this.legend.replaceChildren(
      ...[...entries].map(([key, { trace, color }]) => {
        const item = element("button", "lines-entry");
        item.type = "button";
        item.append(swatch(trace, color), element("span", "", trace.name));
        item.addEventListener("click", () => this.toggle(key, item));
        return item;
      }),
    );
  }

  toggle(key, item) {
    const show = this.hidden.has(key);
    if (show) this.hidden.delete(key);
    else this.hidden.add(key);
    item.classList.toggle("off", !show);
    for (const panel of this.panels) {
      panel.traces.forEach((i, n) => {
        const trace = this.figure.data[i];
        if ((trace.legendgroup || trace.name) === key) panel.plot.setSeries(n + 1, { show });
      });
    }
  }

  update(figure) {
    this.figure = figure;
    const { layout } = figure;
    this.title.textContent = layout.title?.text || "";
    this.title.hidden = !this.title.textContent;
    if (layout.title?.font?.size) this.title.style.fontSize = `${layout.title.font.size}px`;
    const notes = layout.annotations || [];
    const labels = notes.filter((a) => /^x\d*$/.test(a.xref || ""));
    const labelRows = Math.max(
      0,
      ...labels
        .filter((a) => a.yanchor !== "top")
        .map((a) => labelRow(a) + 1),
    );
    for (const panel of this.panels) {
      const title = notes.find(
        (a) =>
          a.xref === "paper" &&
          a.yref === "paper" &&
          a.x >= panel.xDomain[0] &&
          a.x <= panel.xDomain[1] &&
          Math.abs(a.y - panel.yDomain[1]) < 0.02,
      );
      panel.heading.textContent = title?.text || "";
      panel.heading.hidden = !this.hasSubplotTitles;
      panel.labels = labels.filter((a) => (a.xref || "x") === panel.xref);
      panel.strip.style.height = panel.top ? `${labelRows * LABEL_ROW_PX}px` : "0";
      this.setLabels(panel);
      const tables = panel.traces.map((i) => table(figure.data[i]));
      const joined = uPlot.join(tables);
      // Appended rows keep a zoomed-in view where the user left it.
      panel.plot.setData(joined, !panel.isZoomed);
    }
  }

  setLabels(panel) {
    const make = (a) => {
      const node = element("span", "lines-label", a.text);
      if (a.hovertext && a.hovertext !== a.text) node.title = a.hovertext;
      node.dataset.x = a.x;
      return node;
    };
    const inStrip = panel.labels.filter((a) => a.yanchor !== "top");
    const hanging = panel.labels.filter((a) => a.yanchor === "top");
    const key = JSON.stringify(panel.labels);
    if (key !== panel.labelsKey) {
      panel.labelsKey = key;
      panel.strip.replaceChildren(
        ...inStrip.map((a) => {
          const node = make(a);
          node.style.bottom = `${labelRow(a) * LABEL_ROW_PX}px`;
          return node;
        }),
      );
      panel.marks.replaceChildren(...hanging.map(make));
    }
  }

  drawExtras(panel, u) {
    // Labels: at their x, in CSS px from the plot's left edge.
    const plotLeft = u.bbox.left / uPlot.pxRatio;
    for (const node of [...panel.strip.children, ...panel.marks.children]) {
      const left = u.valToPos(Number(node.dataset.x), "x");
      const inside = left >= 0 && left <= u.bbox.width / uPlot.pxRatio;
      node.hidden = !inside;
      const offset = node.parentElement === panel.strip ? plotLeft : 0;
      node.style.left = `${offset + left}px`;
    }
    this.drawShapes(panel, u);
  }

  drawShapes(panel, u) {
    const shapes = (this.figure.layout.shapes || []).filter((s) => s.type === "line");
    const { ctx, bbox } = u;
    // A ref is an axis ("x2": data values) or a fraction of the plot ("x domain", "paper").
    const fraction = (ref) => ref === "paper" || ref.endsWith(" domain");
    const xAt = (value, ref) =>
      fraction(ref) ? bbox.left + value * bbox.width : u.valToPos(value, "x", true);
    const yAt = (value, ref) =>
      fraction(ref)
        ? bbox.top + (1 - value) * bbox.height
        : u.valToPos(value, ref.split(" ")[0], true);
    ctx.save();
    ctx.beginPath();
    ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
    ctx.clip();
    for (const shape of shapes) {
      const xref = shape.xref || "x";
      const yref = shape.yref || "y";
      const xAxis = xref.split(" ")[0];
      const yAxis = yref.split(" ")[0];
      const onX = xAxis === panel.xref || xAxis === "paper";
      const onY = panel.scales.includes(yAxis) || yAxis === "paper";
      if (!onX || !onY || (xAxis === "paper" && yAxis === "paper")) continue;
      const width = shape.line?.width ?? 2;
      ctx.strokeStyle = shape.line?.color || "#444";
      ctx.lineWidth = width * uPlot.pxRatio;
      ctx.setLineDash(plotlyDash(shape.line?.dash, width));
      ctx.beginPath();
      ctx.moveTo(xAt(shape.x0, xref), yAt(shape.y0, yref));
      ctx.lineTo(xAt(shape.x1, xref), yAt(shape.y1, yref));
      ctx.stroke();
    }
    ctx.restore();
  }

  hover(panel, u) {
    if (this.active !== panel) return; // a cursor synced from the plot under the mouse
    const { idx, left, top } = u.cursor;
    if (idx == null || left < 0) {
      this.tip.hidden = true;
      return;
    }
    const lines = [`step ${format(u.data[0][idx])}`];
    u.series.forEach((s, n) => {
      const value = n > 0 && s.show ? u.data[n][idx] : null;
      if (value != null) lines.push(`${s.label}: ${format(value)}`);
    });
    if (this.tip.parentElement !== panel.cell) panel.cell.append(this.tip);
    this.tip.textContent = lines.join("\n");
    this.tip.hidden = false;
    const plotTop = panel.strip.offsetHeight + panel.heading.offsetHeight;
    const x = u.bbox.left / uPlot.pxRatio + left;
    const flip = left > u.bbox.width / uPlot.pxRatio / 2;
    this.tip.style.left = flip ? "" : `${x + 12}px`;
    this.tip.style.right = flip ? `${u.width - x + 12}px` : "";
    this.tip.style.top = `${plotTop + top + 8}px`;
  }

  zoomed(panel, u) {
    const xs = u.data[0];
    const { min, max } = u.scales.x;
    panel.isZoomed = xs.length > 1 && (min > xs[0] || max < xs[xs.length - 1]);
  }

  resized(entries) {
    for (const entry of entries) {
      const panel = this.panels.find((p) => p.cell === entry.target);
      const width = Math.round(entry.contentRect.width);
      if (panel && width > 0 && width !== panel.plot.width) {
        panel.plot.setSize({ width, height: panel.height });
      }
    }
  }
}
