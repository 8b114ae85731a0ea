// Vanishing/exploding-gradient dashboard.

import { api } from "../api";
import type { App } from "../app";
import { errorText } from "../app";
import {
  barOption,
  heatmapMarks,
  lineOption,
  heatmapYAxisLabel,
  mountChart,
  updateChart,
  type LineSpec,
  type RefLine,
} from "../charts";
import { decodeHistogram, decodeMatrix, decodeNumber, decodeSeries, decodeShapes, decodeStep } from "../decode";
import { clear, el, emptyState, errorState, loadingState } from "../dom";
import { escapeHtml, formatExact, formatPercent, formatShort, valueHtml } from "../format";
import { checkOutput, optimizerText, tinyInit, totalParams, TINY_INIT_SCALE, type ManifestLayer } from "../manifest";
import {
  gradNormHeatmap,
  histogramHeatmap,
  isKernelLike,
  layerOf,
  lineData,
  matchVariable,
  matrixRow,
  nearestIndex,
  onCommonBins,
  positiveRange,
  profileAt,
  rowHasData,
  sharedLogRange,
  shapeText,
  shortNames,
  stepExtent,
  zoomWindow,
} from "../shape";
import { RED } from "../style";
import { runColor } from "../colors";
import { nameSpan } from "../names";
import { selectedRuns, type State } from "../state";
import type { Histogram, Series } from "../types";
import type { ECharts } from "echarts/core";
import {
  chartForKind,
  chartPanel,
  drawHeatmapCell,
  drawLines,
  focusBanner,
  loadManifests,
  multiLayout,
  notApplicable,
  scrollToTestid,
  setPanelPoints,
  styleKey,
  type ChartPanel,
  type RunManifest,
} from "./common";

export interface GradRec {
  run: string;
  name: string;
  label: string;
  color: string;
  variables: string[];
  short: string[];
  shapes: Record<string, number[]>;
  steps: number[];
  matrix: Record<string, (number | null)[][]>;
  firstLast: Series;
  thresholds: {
    vanishing: number | null;
    exploding: number | null;
    updateLow: number | null;
    guideline: number | null;
  };
}

const VAR_COLORS = [
  "#1e88e5", "#f57c00", "#43a047", "#8e24aa", "#e53935", "#00acc1", "#6d4c41", "#c0ca33", "#3949ab", "#757575",
];
/** Gradient-norm colour ramp: pale = small, dark = large (vanishing rows fade out). */
const NORM_COLORS = ["#e9f1f9", "#deebf7", "#9ecae1", "#4292c6", "#2171b5", "#08306b"];
const ZERO_COLOR = "#8d8d8d";
const STATS_ORDER = ["norm", "max_abs", "zero_fraction", "update_ratio", "weight_norm", "nonfinite"];

export async function renderGradients(app: App, root: HTMLElement, isCurrent: () => boolean): Promise<void> {
  const { state } = app;
  const sel = selectedRuns(state);
  if (sel.length === 0) {
    root.appendChild(emptyState("No run selected", "Select one or more runs on the left."));
    return;
  }
  const runs = sel.filter((r) => r.gradients.length > 0);
  if (runs.length === 0) {
    root.appendChild(
      emptyState(
        "The selected runs have no gradient records",
        "Gradients are recorded in the train run by tb_plugin.HealthCallback(log_dir). Select a train run.",
      ),
    );
    return;
  }
  const jobs = runs.flatMap((r) =>
    r.gradients.map((g) => ({ run: r.run, name: g.name, label: r.gradients.length > 1 ? `${r.run} · ${g.name}` : r.run })),
  );
  const loading = loadingState(`Loading gradients of ${jobs.length} record${jobs.length > 1 ? "s" : ""}…`);
  root.appendChild(loading);
  const [results, manifests] = await Promise.all([
    Promise.allSettled(jobs.map((j) => api.gradients(j.run, j.name, state.width))),
    loadManifests(app, runs.map((r) => r.run)),
  ]);
  if (!isCurrent()) return;
  loading.remove();

  const recs: GradRec[] = [];
  results.forEach((res, i) => {
    const j = jobs[i];
    if (res.status === "rejected") {
      root.appendChild(errorState(`${j.label}: ${errorText(res.reason)}`));
      return;
    }
    const d = res.value;
    const variables = Array.isArray(d?.variables) ? d.variables.map(String) : [];
    const rawSteps = Array.isArray(d?.steps) ? d.steps : [];
    const steps = rawSteps.map((s, k) => decodeStep(s) ?? k);
    const matrix: GradRec["matrix"] = {};
    for (const [stat, m] of Object.entries(d?.matrix ?? {})) matrix[stat] = decodeMatrix(m, variables.length, steps.length);
    if (matrix.update_ratio) matrix.update_ratio = definedUpdateRatios(matrix.update_ratio, matrix.weight_norm);
    const t = (d?.thresholds ?? {}) as unknown as Record<string, unknown>;
    recs.push({
      run: j.run,
      name: j.name,
      label: j.label,
      color: runColor(state, j.run),
      variables,
      short: shortNames(variables),
      shapes: decodeShapes(d?.shapes),
      steps,
      matrix,
      firstLast: decodeSeries(d?.first_last_ratio),
      thresholds: {
        vanishing: decodeNumber(t.vanishing_ratio),
        exploding: decodeNumber(t.exploding_ratio),
        updateLow: decodeNumber(t.update_ratio_low),
        guideline: decodeNumber(t.update_ratio_guideline) ?? 1e-3,
      },
    });
  });
  if (recs.length === 0) return;

  const banner = focusBanner(app, "gradients");
  if (banner) root.appendChild(banner);
  const focus = state.focus && recs.some((r) => r.run === state.focus?.run) ? state.focus : null;

  // resolve the chosen variable: explicit choice, else the focus layer, else the first variable
  const focusRec = focus ? recs.find((r) => r.run === focus.run) : undefined;
  if (state.gradVariable === null && focusRec && focus?.layer) {
    const vi = matchVariable(focusRec.variables, focus.layer);
    if (vi >= 0) state.gradVariable = focusRec.variables[vi];
  }
  const allVars = unionVariables(recs);
  if (state.gradVariable === null || !allVars.includes(state.gradVariable)) state.gradVariable = allVars[0] ?? null;

  root.appendChild(modelPanel(recs, manifests));

  const grid = el("div", { class: "grid2" });
  root.appendChild(grid);
  const pHeat = chartPanel(
    "chart-grad-heatmap",
    "Gradient norm by layer over time",
    "Rows: variables, input at the top. Colour: log10 of the gradient's L2 norm; pale = small, so vanishing gradients fade toward the input. Grey: 0, red: NaN/Inf. Click to pick a step.",
    { wide: true },
  );
  const pProfile = chartPanel(
    "chart-layer-profile",
    "Per-layer gradient norm at the chosen step",
    "Input → output. Vanishing gradients shrink from right to left.",
    { wide: true },
  );
  const pFL = chartPanel(
    "chart-first-last",
    "First layer / output layer gradient ratio",
    "Gradient norm of the first kernel divided by that of the output layer (kernel and bias: the error signal the loss sends in), log scale: the quantity the vanishing-gradients rule judges, with its thresholds.",
    { wide: true },
  );
  const withRatio = recs.filter((r) => r.firstLast.steps.length > 0);
  if (withRatio.length > 1) pFL.controls.appendChild(runKeyOf(withRatio));
  const pUpd = chartPanel(
    "chart-update-ratio",
    "Update-to-weight ratio per layer",
    "||Δw|| / ||w|| per step (log scale). Around 1e-3 is the usual guideline; far below, the layer does not learn.",
    { wide: true },
  );
  const pZero = chartPanel(
    "chart-zero-grad",
    "Zero-gradient fraction per layer",
    "Share of gradient entries exactly 0 (dead ReLUs, disconnected layers).",
    { wide: true },
  );
  const pHist = chartPanel(
    "chart-grad-hist",
    "log10|g| histogram of one layer over time",
    "Share of the layer's nonzero gradient entries per log10|g| bin (exact zeros are counted by the zero-gradient fraction).",
    { wide: true },
  );
  grid.append(pHeat.panel, pProfile.panel, pFL.panel, pUpd.panel, pZero.panel, pHist.panel);

  const extent = stepExtent(recs.map((r) => r.steps));
  const zoom = focus && focus.first !== null && extent ? zoomWindow(focus.first, focus.last ?? focus.first, extent) : null;
  const common = { zoom, markStep: focus?.first ?? null };
  const group = "gradients";

  // ---- heatmaps (one per run), click to choose step / layer
  const heatCharts = drawHeatmaps(app, pHeat, recs, focus, () => redrawChoice());

  // ---- first/last ratio
  const t0 = recs[0].thresholds;
  const flRefs: RefLine[] = [];
  if (t0.vanishing !== null && t0.vanishing > 0) flRefs.push({ value: t0.vanishing, label: `vanishing < ${formatShort(t0.vanishing)}`, color: RED });
  if (t0.exploding !== null && t0.exploding > 0) flRefs.push({ value: t0.exploding, label: `exploding > ${formatShort(t0.exploding)}`, color: RED });
  drawLines(
    pFL,
    {
      series: recs
        .map((r) => ({ name: r.label, color: r.color, data: lineData(r.firstLast, { log: true }) }))
        .filter((s) => s.data.points.length > 0),
      yLog: true,
      refLines: flRefs,
      legend: false,
      ...common,
    },
    "The first/last gradient ratio is not recorded for the selected runs.",
    group,
  );

  // ---- update ratio and zero fraction: one chart per run, one line per variable
  const updRefs: RefLine[] = [{ value: t0.guideline ?? 1e-3, label: `guideline ${formatShort(t0.guideline ?? 1e-3)}`, color: "#1565c0" }];
  if (t0.updateLow !== null && t0.updateLow > 0 && t0.updateLow !== t0.guideline) {
    updRefs.push({ value: t0.updateLow, label: `too low < ${formatShort(t0.updateLow)}`, color: RED });
  }
  drawPerVariable(state, pUpd, recs, "update_ratio", { log: true, refLines: updRefs, ...common },
    "Update ratios are not recorded for the selected runs (custom training loops may pass updates=).", group);
  drawPerVariable(state, pZero, recs, "zero_fraction", { log: false, ...common },
    "Zero-gradient fractions are not recorded for the selected runs.", group);

  // ---- profile + histogram depend on the chosen step / variable
  const varSelect = el("select", { attrs: { "aria-label": "Layer of the histogram" }, testid: "grad-hist-variable" });
  for (const v of allVars) {
    const o = el("option", {}, v);
    o.value = v;
    varSelect.appendChild(o);
  }
  if (state.gradVariable) varSelect.value = state.gradVariable;
  varSelect.addEventListener("change", () => {
    state.gradVariable = varSelect.value;
    redrawChoice();
  });
  pHist.controls.append(el("span", { class: "muted" }, "Layer:"), varSelect);

  let histToken = 0;
  function redrawChoice(): void {
    if (state.gradVariable && varSelect.value !== state.gradVariable) varSelect.value = state.gradVariable;
    heatCharts.forEach((c, i) => updateHeatmapMarks(c, recs[i], state));
    drawProfiles(app, pProfile, recs, () => redrawChoice());
    const token = ++histToken;
    void drawHistograms(state, pHist, recs, focus, () => token === histToken && isCurrent());
  }
  redrawChoice();

  if (focus) scrollToTestid(root, chartForKind(focus.kind, "gradients"));
}

function unionVariables(recs: GradRec[]): string[] {
  const out: string[] = [];
  for (const r of recs) for (const v of r.variables) if (!out.includes(v)) out.push(v);
  return out;
}

function chosenIndex(state: State, r: GradRec): number {
  if (r.steps.length === 0) return -1;
  return state.gradStep === null ? r.steps.length - 1 : nearestIndex(r.steps, state.gradStep);
}

function drawHeatmaps(
  app: App,
  p: ChartPanel,
  recs: GradRec[],
  focus: State["focus"],
  onChoice: () => void,
): (ECharts | null)[] {
  const { state } = app;
  const cells = multiLayout(p, recs.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  // one colour scale for all runs, so side-by-side heatmaps compare
  const maps = recs.map((r) => gradNormHeatmap(r.variables, r.steps, r.matrix.norm ?? []));
  const withCells = maps.filter((m) => m.cells.length > 0);
  const lo = withCells.length ? Math.floor(Math.min(...withCells.map((m) => m.min))) : 0;
  const hi = withCells.length ? Math.ceil(Math.max(...withCells.map((m) => m.max))) : 1;
  const charts = recs.map((r, i) => {
    const hm = maps[i];
    const si = chosenIndex(state, r);
    const vi = state.gradVariable ? r.variables.indexOf(state.gradVariable) : -1;
    let zoom: [number, number] | null = null;
    if (focus && focus.run === r.run && focus.first !== null && r.steps.length) {
      const [a, b] = zoomWindow(focus.first, focus.last ?? focus.first, [r.steps[0], r.steps[r.steps.length - 1]]);
      zoom = [nearestIndex(r.steps, a), nearestIndex(r.steps, b)];
    }
    const { chart } = drawHeatmapCell(
      cells[i],
      {
        xSteps: hm.xSteps,
        yLabels: r.short,
        cells: hm.cells,
        min: lo,
        max: hi > lo ? hi : lo + 1,
        yInverse: true,
        colors: NORM_COLORS,
        extra: [
          { name: "zero", color: ZERO_COLOR, cells: hm.zeroCells },
          { name: "non-finite", color: RED, cells: hm.nonFiniteCells },
        ],
        markX: si >= 0 ? { index: si, label: `step ${r.steps[si]}` } : null,
        highlightY: vi >= 0 ? vi : null,
        zoom,
        plotHeight: r.variables.length > 12 ? 260 : 200,
        visualLabel: (v) => `1e${Math.round(v * 10) / 10}`,
        cellTooltip: (x, y, v, norm, group) =>
          `<div>${escapeHtml(r.label)}</div>` +
          `<div>${escapeHtml(r.variables[y])}</div>` +
          (r.shapes[r.variables[y]] ? `<div class="muted">shape ${escapeHtml(shapeText(r.shapes[r.variables[y]]))}</div>` : "") +
          `<div>step <b>${escapeHtml(r.steps[x])}</b></div>` +
          `<div>gradient norm: ${valueHtml(norm)}${group === null ? ` (log10 ${escapeHtml(formatExact(v))})` : group === "zero" ? " (exactly zero)" : ""}</div>`,
      },
      "No gradient norms recorded.",
      r.variables.length > 12 ? true : r.variables.length <= 8 ? "short" : false,
    );
    if (chart) {
      const choose = (x: number, y: number | null) => {
        if (x >= 0 && x < r.steps.length) state.gradStep = r.steps[x];
        if (y !== null && y >= 0 && y < r.variables.length) state.gradVariable = r.variables[y];
        onChoice();
      };
      // clicks anywhere in the plot area choose the column (and row)
      chart.getZr().on("click", (e: { offsetX: number; offsetY: number }) => {
        const pt = [e.offsetX, e.offsetY];
        if (!chart.containPixel({ gridIndex: 0 }, pt)) return;
        const xy = chart.convertFromPixel({ gridIndex: 0 }, pt) as number[] | number;
        if (!Array.isArray(xy)) return;
        choose(Math.round(xy[0]), Math.round(xy[1]));
      });
    }
    return chart;
  });
  setPanelPoints(p, cells);
  return charts;
}

function updateHeatmapMarks(chart: ECharts | null, r: GradRec, state: State): void {
  if (!chart || chart.isDisposed()) return;
  const si = chosenIndex(state, r);
  const vi = state.gradVariable ? r.variables.indexOf(state.gradVariable) : -1;
  const spec = {
    xSteps: r.steps,
    yLabels: r.short,
    plotHeight: r.variables.length > 12 ? 260 : 200,
    yInverse: true,
    markX: si >= 0 ? { index: si, label: `step ${r.steps[si]}` } : null,
    highlightY: vi >= 0 ? vi : null,
  };
  const longest = r.short.reduce((a, l) => Math.max(a, l.length), 0);
  const left = Math.min(150, Math.max(48, longest * 6 + 12));
  updateChart(chart, {
    series: [{ id: "main", ...heatmapMarks(spec) }],
    yAxis: { axisLabel: heatmapYAxisLabel(spec, left - 8) },
  });
}

function drawProfiles(app: App, p: ChartPanel, recs: GradRec[], onChoice: () => void): void {
  const { state } = app;
  const withData = recs.filter((r) => r.steps.length > 0 && r.variables.length > 0);
  if (withData.length === 0) {
    notApplicable(p, "No gradient norms recorded.");
    return;
  }
  const cells = multiLayout(p, withData.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  const steps = new Set<number>();
  // one axis for all runs, so the bars of a healthy and a broken run compare
  const shared = sharedLogRange(
    withData.map((r) => {
      const si = chosenIndex(state, r);
      return positiveRange((r.matrix.norm ?? []).map((row) => row[si]));
    }),
  );
  // bars grow from one decade below the smallest value
  const decades: [number, number] | null = shared
    ? [Math.round(Math.log10(shared[0])) - 1, Math.round(Math.log10(shared[1]))]
    : null;
  withData.forEach((r, i) => {
    const si = chosenIndex(state, r);
    steps.add(r.steps[si]);
    const prof = profileAt(r.variables, r.matrix, si);
    const norms = prof.map((e) => e.values.norm ?? null);
    const nonFinite = norms.map((v) => v !== null && !Number.isFinite(v));
    const hl = state.gradVariable ? r.variables.indexOf(state.gradVariable) : -1;
    const cell = cells[i];
    const points = norms.filter((v) => v !== null).length;
    if (points === 0) {
      cell.appendChild(el("div", { class: "na" }, `No gradient norms at step ${r.steps[si]}.`));
      cell.setAttribute("data-points", "0");
      return;
    }
    const div = el("div", { class: "chart short" });
    cell.appendChild(div);
    const chart = mountChart(
      div,
      barOption({
        labels: r.short,
        values: norms,
        // kernels in full colour, biases (and other rank < 2 variables) lighter
        colors: norms.map((v, k) =>
          nonFinite[k] ? RED : v === 0 ? ZERO_COLOR : isKernelLike(r.variables[k], r.shapes[r.variables[k]]) ? "#f57c00" : "#ffcc80",
        ),
        markSpecial: true,
        logDecades: decades,
        widthPx: cell.clientWidth || undefined,
        yLog: true,
        yName: `‖g‖ (step ${r.steps[si]})`,
        highlight: hl >= 0 ? hl : null,
        tooltip: (k) => {
          const e = prof[k];
          const rows = STATS_ORDER.filter((s) => s in e.values).map(
            (s) => `<div>${escapeHtml(s.replace(/_/g, " "))}: ${valueHtml(e.values[s])}</div>`,
          );
          return (
            `<div>${escapeHtml(r.label)}</div><div><b>${escapeHtml(e.variable)}</b></div>` +
            (r.shapes[e.variable] ? `<div class="muted">shape ${escapeHtml(shapeText(r.shapes[e.variable]))}</div>` : "") +
            `<div>step <b>${escapeHtml(r.steps[si])}</b></div>${rows.join("")}`
          );
        },
      }),
      points,
      cell,
    );
    chart.on("click", (params: { dataIndex?: number }) => {
      if (typeof params.dataIndex === "number") {
        state.gradVariable = r.variables[params.dataIndex];
        onChoice();
      }
    });
  });
  setPanelPoints(p, cells);
  const s = [...steps];
  p.sub.textContent = `‖g‖ at step ${s.join(", ")}, input → output (dark: kernels, light: biases), on one scale for all runs. Vanishing gradients shrink toward the input. Click a bar for its histogram.`;
}

async function drawHistograms(
  state: State,
  p: ChartPanel,
  recs: GradRec[],
  focus: State["focus"],
  isCurrent: () => boolean,
): Promise<void> {
  const variable = state.gradVariable;
  const withVar = recs.filter((r) => variable !== null && r.variables.includes(variable));
  if (!variable || withVar.length === 0) {
    notApplicable(p, "Choose a layer.");
    return;
  }
  clear(p.body);
  const loading = loadingState(`Loading the log10|g| histogram of ${variable}…`);
  p.body.appendChild(loading);
  p.panel.removeAttribute("data-points");
  const results = await Promise.allSettled(
    withVar.map((r) => api.gradientHistogram(r.run, r.name, variable, state.width)),
  );
  if (!isCurrent()) return;
  loading.remove();
  const cells = multiLayout(p, withVar.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  // log10|g| bins are fixed (LOG10_RANGE); per-step edges, should a
  // server send them, are re-binned onto one grid like the outputs
  const hists = results.map((res) => (res.status === "fulfilled" ? onCommonBins(decodeHistogram(res.value)) : null));
  // one range for all runs: the bins any of them fills, and one more each side
  const used = occupiedBins(hists.filter((h): h is Histogram => h !== null));
  results.forEach((res, i) => {
    const r = withVar[i];
    const full = hists[i];
    if (res.status === "rejected" || !full) {
      cells[i].appendChild(errorState(errorText(res.status === "rejected" ? res.reason : "")));
      cells[i].setAttribute("data-points", "0");
      return;
    }
    const h = used ? sliceBins(full, used[0], used[1]) : full;
    const hm = histogramHeatmap(h, Math.max(50, Math.min(400, state.width)));
    const labels = h.edges.slice(0, -1).map((e) => (Number.isFinite(e) ? e.toFixed(2) : String(e)));
    cells[i].setAttribute("data-y-range", `${h.edges[0]},${h.edges[h.edges.length - 1]}`);
    const si = state.gradStep === null ? hm.xSteps.length - 1 : nearestIndex(hm.xSteps, state.gradStep);
    let zoom: [number, number] | null = null;
    if (focus && focus.run === r.run && focus.first !== null && hm.xSteps.length) {
      const [a, b] = zoomWindow(focus.first, focus.last ?? focus.first, [hm.xSteps[0], hm.xSteps[hm.xSteps.length - 1]]);
      zoom = [nearestIndex(hm.xSteps, a), nearestIndex(hm.xSteps, b)];
    }
    drawHeatmapCell(
      cells[i],
      {
        xSteps: hm.xSteps,
        yLabels: labels,
        cells: hm.cells,
        min: 0,
        max: hm.max || 1,
        yName: "log10|g|",
        yTicks: decadeTicks(h.edges, 8),
        plotHeight: 260,
        markX: si >= 0 ? { index: si, label: `step ${hm.xSteps[si]}` } : null,
        zoom,
        visualLabel: (v) => formatPercent(v, 0),
        cellTooltip: (x, y, v, count) => {
          const lo = h.edges[y];
          const hi = h.edges[y + 1];
          return (
            `<div>${escapeHtml(r.label)}</div><div>${escapeHtml(variable)}</div>` +
            `<div>step <b>${escapeHtml(hm.xSteps[x])}</b></div>` +
            `<div>log10|g| in [${escapeHtml(formatExact(lo))}, ${escapeHtml(formatExact(hi))})` +
            ` (|g| ${escapeHtml(formatShort(Math.pow(10, lo)))} – ${escapeHtml(formatShort(Math.pow(10, hi)))})</div>` +
            `<div><b>${escapeHtml(formatPercent(v, 2))}</b> of nonzero entries (${escapeHtml(formatExact(count))})</div>`
          );
        },
      },
      "No log10|g| histogram recorded for this layer.",
      true,
    );
  });
  setPanelPoints(p, cells);
}

/** [first, last] bin any histogram fills, widened by one bin each side (null: all empty). */
export function occupiedBins(hs: Histogram[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const h of hs) {
    for (const row of h.counts) {
      row.forEach((c, b) => {
        if (c > 0) {
          lo = Math.min(lo, b);
          hi = Math.max(hi, b);
        }
      });
    }
  }
  if (lo > hi) return null;
  const bins = Math.max(...hs.map((h) => h.edges.length - 1));
  return [Math.max(0, lo - 1), Math.min(bins - 1, hi + 1)];
}

/** Bins `first`..`last` of a histogram. */
function sliceBins(h: Histogram, first: number, last: number): Histogram {
  return { edges: h.edges.slice(first, last + 2), steps: h.steps, counts: h.counts.map((row) => row.slice(first, last + 1)) };
}

/**
 * Tick labels of a log10 axis over bins: the integer (decade) inside a bin
 * labels it, every k-th decade so that at most `max` show; null elsewhere.
 */
export function decadeTicks(edges: number[], max: number): (string | null)[] {
  const lo = Math.ceil(edges[0]);
  const hi = Math.floor(edges[edges.length - 1]);
  const every = Math.max(1, Math.ceil((hi - lo + 1) / max));
  return edges.slice(0, -1).map((e, b) => {
    const d = Math.ceil(e);
    return d < edges[b + 1] && d % every === 0 ? String(d) : null;
  });
}

function runKeyOf(recs: GradRec[]): HTMLElement {
  return el(
    "div",
    { class: "run-key" },
    ...recs.map((r) =>
      el("span", { class: "key-item" }, el("span", { class: "key-swatch", style: { background: r.color } }), nameSpan(r.label)),
    ),
  );
}

/**
 * Update ratios (||update|| / ||weight before it||) with the undefined ones
 * as gaps: the server's NaN for a weight that was zero before the update
 * (zero-initialised biases at step 0) is no alarm while the weight after it
 * (weight_norm) is finite. A NaN beside non-finite weights stays.
 */
export function definedUpdateRatios(
  ratios: (number | null)[][],
  weightNorms: (number | null)[][] | undefined,
): (number | null)[][] {
  return ratios.map((row, vi) =>
    row.map((v, i) => {
      const w = weightNorms?.[vi]?.[i];
      return v !== null && Number.isNaN(v) && w !== null && w !== undefined && Number.isFinite(w) ? null : v;
    }),
  );
}

/** Colour of a variable: by its layer, so a layer's kernel and bias match. */
function layerColors(r: GradRec): string[] {
  const layers: string[] = [];
  return r.variables.map((v) => {
    const l = layerOf(v);
    let i = layers.indexOf(l);
    if (i < 0) {
      layers.push(l);
      i = layers.length - 1;
    }
    return VAR_COLORS[i % VAR_COLORS.length];
  });
}

/** One line chart per run with a line per variable (kernels solid, the rest dashed). */
function drawPerVariable(
  state: State,
  p: ChartPanel,
  recs: GradRec[],
  stat: string,
  opts: { log: boolean; refLines?: RefLine[]; zoom: [number, number] | null; markStep: number | null },
  naText: string,
  group: string,
): void {
  const withData = recs.filter((r) => r.variables.some((_, vi) => rowHasData(r.matrix[stat], vi)));
  if (withData.length === 0) {
    notApplicable(p, naText);
    return;
  }
  p.controls.appendChild(styleKey("kernel", "bias / other"));
  // one y range for all runs (log: whole decades), so the runs compare,
  // unless one run's outliers would squash the others
  const refs = (opts.refLines ?? []).map((x) => x.value);
  const shared = opts.log
    ? sharedLogRange(withData.map((r) => positiveRange([...(r.matrix[stat] ?? []).flat(), ...refs])))
    : null;
  const cells = multiLayout(p, withData.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  withData.forEach((r, i) => {
    const colors = layerColors(r);
    const series: LineSpec[] = r.variables
      .map((v, vi) => ({ v, vi }))
      .filter(({ vi }) => rowHasData(r.matrix[stat], vi))
      .map(({ v, vi }) => ({
        name: r.short[vi],
        color: colors[vi],
        dashed: !isKernelLike(v, r.shapes[v]),
        width: v === state.gradVariable ? 2.8 : isKernelLike(v, r.shapes[v]) ? 1.6 : 1.1,
        data: lineData(matrixRow(r.steps, r.matrix[stat], vi), { log: opts.log }),
        fmt: stat === "zero_fraction" ? (x: number | null) => `${formatExact(x)} (${formatPercent(x, 2)})` : undefined,
      }));
    const cell = cells[i];
    // how many non-finite stretches the chart marks (red "NaN" / "Inf")
    cell.setAttribute("data-nonfinite", String(series.reduce((a, s) => a + s.data.nonFinite.length, 0)));
    // the key: one entry per layer, in depth order
    const seen = new Set<string>();
    const key = el("div", { class: "run-key small" });
    r.variables.forEach((v, vi) => {
      const l = layerOf(v);
      if (seen.has(l) || !rowHasData(r.matrix[stat], vi)) return;
      seen.add(l);
      const short = r.short[vi].includes("/") ? layerOf(r.short[vi]) : r.short[vi];
      key.appendChild(el("span", { class: "key-item", title: l }, el("span", { class: "key-swatch", style: { background: colors[vi] } }), short));
    });
    cell.appendChild(key);
    const div = el("div", { class: "chart" });
    cell.appendChild(div);
    const n = series.reduce((a, s) => a + s.data.points.length, 0);
    mountChart(
      div,
      lineOption({
        series,
        yLog: opts.log,
        yMin: opts.log ? shared?.[0] : 0,
        yMax: opts.log ? shared?.[1] : 1,
        yPercent: !opts.log,
        refLines: opts.refLines,
        legend: false,
        zoom: opts.zoom,
        markStep: opts.markStep,
      }),
      n,
      cell,
      group,
    );
  });
  setPanelPoints(p, cells);
}

/** Distinct kernel initialisers of a model, in layer order. */
function kernelInits(layers: ManifestLayer[]): { text: string; layers: string[]; tiny: boolean }[] {
  const out: { text: string; layers: string[]; tiny: boolean }[] = [];
  for (const l of layers) {
    if (!l.kernelInit) continue;
    const hit = out.find((o) => o.text === l.kernelInit);
    if (hit) hit.layers.push(l.name);
    else out.push({ text: l.kernelInit, layers: [l.name], tiny: tinyInit(l) });
  }
  return out;
}

/**
 * The model of each run, from its manifest: one line per run (loss,
 * optimizer, size, kernel initialisers, output activation) with the settings
 * behind silent failures in red, and the layer table folded under it.
 */
function modelPanel(recs: GradRec[], manifests: Map<string, RunManifest>): HTMLElement {
  const seen = new Set<string>();
  const items = recs.filter((r) => (seen.has(r.run) ? false : (seen.add(r.run), true)));
  const panel = el(
    "div",
    { class: "panel model-panel", testid: "model-panel" },
    el(
      "h3",
      {},
      "Model",
      el("span", { class: "muted h-note" }, "from the manifest HealthCallback writes · red: settings behind silent failures · open a run for its layers"),
    ),
  );
  const list = el("div", { class: "model-list" });
  panel.appendChild(list);
  for (const r of items) {
    const rm = manifests.get(r.run);
    const m = rm?.manifest ?? null;
    const name = el(
      "span",
      { class: "model-run" },
      el("span", { class: "key-swatch", style: { background: r.color } }),
      nameSpan(r.run),
    );
    if (!m) {
      list.appendChild(
        el(
          "div",
          { class: "model-item", data: { run: r.run } },
          el(
            "div",
            { class: "model-line" },
            name,
            el(
              "span",
              { class: "muted" },
              rm?.error ? `could not load the manifest: ${rm.error}` : "no manifest recorded (HealthCallback writes one)",
            ),
          ),
        ),
      );
      continue;
    }
    const out = checkOutput(m);
    const params = totalParams(m);
    const lossText = m.loss
      ? `${m.loss.cls}${m.loss.fromLogits === null ? "" : `(from_logits=${m.loss.fromLogits ? "True" : "False"})`}`
      : "–";
    const inits = kernelInits(m.layers);
    const part = (label: string, value: string, bad = false, title?: string) =>
      el("span", { class: `model-part${bad ? " bad" : ""}`, title }, `${label} `, el("b", {}, value));
    const line = el(
      "summary",
      { class: "model-line", title: "Show the layers" },
      el("span", { class: "caret" }, "▸"),
      name,
      out.layer
        ? part("output", `${out.layer.name}: ${out.activation}`, out.problem !== null, out.problem ?? "The output activation matches the loss.")
        : part("output", "–"),
      part("loss", lossText, out.problem !== null, `loss name: ${m.loss?.name ?? "–"}`),
      part("optimizer", optimizerText(m)),
      ...inits.map((i) =>
        part(
          "kernel init",
          i.text,
          i.tiny,
          i.tiny
            ? `scale < ${TINY_INIT_SCALE}: the signal and the gradients shrink layer after layer (${i.layers.join(", ")})`
            : i.layers.join(", "),
        ),
      ),
    );
    const table = el(
      "table",
      { class: "model-table" },
      el("tr", {}, el("th", {}, "layer"), el("th", {}, "type"), el("th", {}, "activation"), el("th", {}, "kernel init"), el("th", {}, "bias init"), el("th", { class: "num" }, "params")),
    );
    for (const l of m.layers) {
      const isOut = out.layer === l;
      const tiny = tinyInit(l);
      table.appendChild(
        el(
          "tr",
          { class: isOut ? "out" : undefined },
          el("td", { class: "mono", title: l.name }, l.name, isOut ? el("span", { class: "tag" }, "output") : null),
          el("td", { title: l.cls }, l.cls),
          el("td", { class: isOut && out.problem ? "bad" : undefined, title: isOut ? (out.problem ?? `loss: ${lossText}`) : undefined }, l.activation ?? "–"),
          el("td", { class: tiny ? "bad" : undefined, title: l.kernelInit ?? undefined }, l.kernelInit ?? "–"),
          el("td", { title: l.biasInit ?? undefined }, l.biasInit ?? "–"),
          el("td", { class: "num" }, l.params === null ? "–" : l.params.toLocaleString("en-US")),
        ),
      );
    }
    const details = el(
      "details",
      { class: "model-item", data: { run: r.run } },
      line,
      el("div", { class: "model-scroll" }, table),
      el("div", { class: "model-versions muted" }, `${m.layers.length} layers${params !== null ? `, ${params.toLocaleString("en-US")} params` : ""}`),
      out.problem ? el("div", { class: "model-problem" }, `Output layer: ${out.problem}.`) : null,
      m.versions.length ? el("div", { class: "model-versions muted" }, m.versions.map(([k, v]) => `${k} ${v}`).join(" · ")) : null,
    );
    list.appendChild(details);
  }
  return panel;
}
