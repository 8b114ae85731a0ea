// Vanishing/exploding-gradient dashboard.

import { api } from "../api";
import type { App } from "../app";
import { errorText } from "../app";
import {
  barOption,
  heatmapMarks,
  heatmapYAxisLabel,
  mountChart,
  type LineSpec,
  type RefLine,
} from "../charts";
import { decodeHistogram, decodeMatrix, decodeNumber, decodeSeries, decodeStep } from "../decode";
import { clear, el, emptyState, errorState, loadingState } from "../dom";
import { escapeHtml, formatExact, formatPercent, formatShort, valueHtml } from "../format";
import {
  gradNormHeatmap,
  histogramHeatmap,
  lineData,
  matchVariable,
  matrixRow,
  nearestIndex,
  profileAt,
  rowHasData,
  shortNames,
  stepExtent,
  zoomWindow,
} from "../shape";
import { RED } from "../style";
import { runColor, selectedRuns, type State } from "../state";
import type { Series } from "../types";
import type { ECharts } from "echarts/core";
import {
  chartForKind,
  chartPanel,
  drawHeatmapCell,
  drawLines,
  focusBanner,
  multiLayout,
  notApplicable,
  scrollToTestid,
  setPanelPoints,
  type ChartPanel,
} from "./common";

export interface GradRec {
  run: string;
  name: string;
  label: string;
  color: string;
  variables: string[];
  short: string[];
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
const LINE_TYPES: ("solid" | "dashed")[] = ["solid", "dashed"];
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
  const results = await Promise.allSettled(jobs.map((j) => api.gradients(j.run, j.name, state.width)));
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
    const t = (d?.thresholds ?? {}) as unknown as Record<string, unknown>;
    recs.push({
      run: j.run,
      name: j.name,
      label: j.label,
      color: runColor(state, j.run),
      variables,
      short: shortNames(variables),
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

  const grid = el("div", { class: "grid2" });
  root.appendChild(grid);
  const pHeat = chartPanel(
    "chart-grad-heatmap",
    "Gradient norm by layer over time (log10)",
    "Rows: variables in depth order (input at the top). Colour: log10 of the gradient's L2 norm. Grey: exactly zero, red: NaN/Inf. Click a cell to choose the step and the layer.",
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
    "First / last layer gradient ratio",
    "Gradient norm of the first kernel divided by that of the last (log scale), with the diagnosis thresholds.",
  );
  const pUpd = chartPanel(
    "chart-update-ratio",
    "Update-to-weight ratio per layer",
    "||Δw|| / ||w|| per step (log scale). Around 1e-3 is the usual guideline; far below, the layer does not learn.",
  );
  const pZero = chartPanel(
    "chart-zero-grad",
    "Zero-gradient fraction per layer",
    "Share of gradient entries exactly 0 (dead ReLUs, disconnected layers).",
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
      ...common,
    },
    "The first/last gradient ratio is not recorded for the selected runs.",
    group,
  );

  // ---- update ratio and zero fraction, one series per (run, variable)
  const perVar = (stat: string, log: boolean): LineSpec[] =>
    recs.flatMap((r, ri) =>
      r.variables
        .map((v, vi) => ({ v, vi }))
        .filter(({ vi }) => rowHasData(r.matrix[stat], vi))
        .map(({ v, vi }) => ({
          name: recs.length > 1 ? `${r.label} · ${r.short[vi]}` : r.short[vi],
          color: VAR_COLORS[vi % VAR_COLORS.length],
          dashed: LINE_TYPES[ri % LINE_TYPES.length] === "dashed",
          width: v === state.gradVariable ? 2.6 : 1.3,
          data: lineData(matrixRow(r.steps, r.matrix[stat], vi), { log }),
          fmt: stat === "zero_fraction" ? (x: number | null) => `${formatExact(x)} (${formatPercent(x, 2)})` : undefined,
        })),
    );
  const updRefs: RefLine[] = [{ value: t0.guideline ?? 1e-3, label: `guideline ${formatShort(t0.guideline ?? 1e-3)}`, color: "#1565c0" }];
  if (t0.updateLow !== null && t0.updateLow > 0 && t0.updateLow !== t0.guideline) {
    updRefs.push({ value: t0.updateLow, label: `too low < ${formatShort(t0.updateLow)}`, color: RED });
  }
  drawLines(
    pUpd,
    { series: perVar("update_ratio", true), yLog: true, refLines: updRefs, legend: true, ...common },
    "Update ratios are not recorded for the selected runs (custom training loops may pass updates=).",
    group,
  );
  drawLines(
    pZero,
    { series: perVar("zero_fraction", false), yMin: 0, yMax: 1, yPercent: true, legend: true, ...common },
    "Zero-gradient fractions are not recorded for the selected runs.",
    group,
  );

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
        colors: ["#0d1b2a", "#1b3a5c", "#3f6e8c", "#9cc3d5", "#ffe0b2", "#ffb74d", "#f57c00"],
        extra: [
          { name: "zero", color: "#bdbdbd", cells: hm.zeroCells },
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
          `<div>step <b>${escapeHtml(r.steps[x])}</b></div>` +
          `<div>gradient norm: ${valueHtml(norm)}${group === null ? ` (log10 ${escapeHtml(formatExact(v))})` : group === "zero" ? " (exactly zero)" : ""}</div>`,
      },
      "No gradient norms recorded.",
      r.variables.length > 12,
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
    markX: si >= 0 ? { index: si, label: `step ${r.steps[si]}` } : null,
    highlightY: vi >= 0 ? vi : null,
  };
  const longest = r.short.reduce((a, l) => Math.max(a, l.length), 0);
  const left = Math.min(150, Math.max(48, longest * 6 + 12));
  chart.setOption({
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
    const div = el("div", { class: "chart" });
    cell.appendChild(div);
    const chart = mountChart(
      div,
      barOption({
        labels: r.short,
        values: norms,
        colors: norms.map((v, k) => (nonFinite[k] ? RED : v === 0 ? "#bdbdbd" : null)),
        yLog: true,
        yName: `‖g‖ at step ${r.steps[si]}`,
        highlight: hl >= 0 ? hl : null,
        tooltip: (k) => {
          const e = prof[k];
          const rows = STATS_ORDER.filter((s) => s in e.values).map(
            (s) => `<div>${escapeHtml(s.replace(/_/g, " "))}: ${valueHtml(e.values[s])}</div>`,
          );
          return (
            `<div>${escapeHtml(r.label)}</div><div><b>${escapeHtml(e.variable)}</b></div>` +
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
  p.sub.textContent = `Input → output at step ${s.join(", ")} (click a column of the heatmap to choose another). Vanishing gradients shrink from right to left. Click a bar to show its histogram.`;
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
  results.forEach((res, i) => {
    const r = withVar[i];
    if (res.status === "rejected") {
      cells[i].appendChild(errorState(errorText(res.reason)));
      cells[i].setAttribute("data-points", "0");
      return;
    }
    const h = decodeHistogram(res.value);
    const hm = histogramHeatmap(h, Math.max(50, Math.min(400, state.width)));
    const labels = h.edges.slice(0, -1).map((e) => (Number.isFinite(e) ? e.toFixed(1) : String(e)));
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
