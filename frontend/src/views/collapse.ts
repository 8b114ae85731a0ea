// Prediction-collapse dashboard: entropy, top-1 histogram, class shares,
// ties, accuracy, zero logits, regression spread.

import { api } from "../api";
import type { App } from "../app";
import { errorText } from "../app";
import { lineOption, mountChart, type LineSpec } from "../charts";
import { decodeHistogram, decodeNumber, decodeSeries } from "../decode";
import { el, emptyState, errorState, loadingState } from "../dom";
import { escapeHtml, formatExact, formatPercent } from "../format";
import {
  binIndexOf,
  classShares,
  effectiveClasses,
  histogramHeatmap,
  lineData,
  nearestIndex,
  stepExtent,
  zoomWindow,
} from "../shape";
import { runColor, selectedRuns, type State } from "../state";
import type { Histogram, Series } from "../types";
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
} from "./common";

export interface PredRec {
  run: string;
  name: string;
  label: string; // series name: run, or "run · name" when the run has several records
  color: string;
  task: string;
  k: number | null; // effective number of classes
  fromLogits: boolean | null;
  scalars: Record<string, Series>;
  hists: Record<string, Histogram>;
}

const CLASS_COLORS = [
  "#f57c00", "#1e88e5", "#43a047", "#8e24aa", "#e53935", "#00acc1", "#6d4c41", "#fdd835", "#3949ab", "#9e9e9e",
];

export async function renderCollapse(app: App, root: HTMLElement, isCurrent: () => boolean): Promise<void> {
  const { state } = app;
  const sel = selectedRuns(state);
  if (sel.length === 0) {
    root.appendChild(emptyState("No run selected", "Select one or more runs on the left."));
    return;
  }
  const runs = sel.filter((r) => r.predictions.length > 0);
  if (runs.length === 0) {
    root.appendChild(
      emptyState(
        "The selected runs have no prediction records",
        "Prediction statistics are written by tb_plugin.HealthCallback(log_dir) for the train and validation runs. Select a run with predictions, or open the Gradients tab.",
      ),
    );
    return;
  }
  const jobs = runs.flatMap((r) =>
    r.predictions.map((p) => ({
      run: r.run,
      name: p.name,
      label: r.predictions.length > 1 ? `${r.run} · ${p.name}` : r.run,
    })),
  );
  const loading = loadingState(`Loading predictions of ${jobs.length} record${jobs.length > 1 ? "s" : ""}…`);
  root.appendChild(loading);
  const results = await Promise.allSettled(jobs.map((j) => api.predictions(j.run, j.name, state.width)));
  if (!isCurrent()) return;
  loading.remove();

  const recs: PredRec[] = [];
  results.forEach((res, i) => {
    const j = jobs[i];
    if (res.status === "rejected") {
      root.appendChild(errorState(`${j.label}: ${errorText(res.reason)}`));
      return;
    }
    const d = res.value;
    const scalars: Record<string, Series> = {};
    for (const [k, v] of Object.entries(d?.scalars ?? {})) scalars[k] = decodeSeries(v);
    const hists: Record<string, Histogram> = {};
    for (const [k, v] of Object.entries(d?.histograms ?? {})) hists[k] = decodeHistogram(v);
    const task = String(d?.task ?? "");
    recs.push({
      run: j.run,
      name: j.name,
      label: j.label,
      color: runColor(state, j.run),
      task,
      k: effectiveClasses(task, decodeNumber(d?.num_classes)),
      fromLogits: typeof d?.from_logits === "boolean" ? d.from_logits : null,
      scalars,
      hists,
    });
  });
  if (recs.length === 0) return;

  const banner = focusBanner(app, "collapse");
  if (banner) root.appendChild(banner);

  const focus = state.focus && recs.some((r) => r.run === state.focus?.run) ? state.focus : null;
  const extent = stepExtent(recs.flatMap((r) => Object.values(r.scalars).map((s) => s.steps)));
  const zoom =
    focus && focus.first !== null && extent ? zoomWindow(focus.first, focus.last ?? focus.first, extent) : null;
  const markStep = focus?.first ?? null;
  const common = { zoom, markStep };
  const group = "collapse";

  const grid = el("div", { class: "grid2" });
  root.appendChild(grid);

  const pEntropy = chartPanel(
    "chart-entropy",
    "Normalised prediction entropy",
    "Mean entropy / log K per record. 1.0 (dashed) = uniform outputs: the model predicts nothing.",
  );
  const pAcc = chartPanel(
    "chart-accuracy",
    "Argmax accuracy vs tie-tolerant accuracy",
    "Solid: argmax accuracy (ties go to the lowest class). Dashed: tie-tolerant (in_top_k) accuracy. A gap means ties inflate the reported metric.",
  );
  const pTop1 = chartPanel(
    "chart-top1-heatmap",
    "Top-1 probability over time",
    "Share of rows per top-1 probability bin (columns sum to 100%). A band at 1/K (dashed) means the outputs are uniform.",
    { wide: true },
  );
  const pShares = chartPanel(
    "chart-class-shares",
    "Predicted-class shares vs label shares",
    "Solid: share of rows predicted as each class. Dashed: share of the labels (same colour = same class). One class taking everything = collapse.",
    { wide: true },
  );
  const pTies = chartPanel(
    "chart-ties",
    "Tie fraction",
    "Rows whose top-1 value occurs more than once (binary: probability exactly 0.5).",
  );
  const pZero = chartPanel(
    "chart-zero-logits",
    "Zero-logit fraction",
    "Logits exactly 0 (recorded when the loss takes logits). A ReLU on the logits drives this to 100%.",
  );
  const pReg = chartPanel(
    "chart-regression-spread",
    "Regression output spread",
    "Solid: std of the outputs over the batch. Dashed: std of the targets. Outputs collapsing to a constant have std near 0.",
  );
  grid.append(pEntropy.panel, pAcc.panel, pTop1.panel, pShares.panel, pTies.panel, pZero.panel, pReg.panel);

  const ld = (r: PredRec, stat: string) => lineData(r.scalars[stat] ?? { steps: [], values: [] });
  const withData = (specs: LineSpec[]) => specs.filter((s) => s.data.points.length > 0);

  // entropy
  drawLines(
    pEntropy,
    {
      series: withData(recs.map((r) => ({ name: r.label, color: r.color, data: ld(r, "entropy") }))),
      yMin: 0,
      refLines: [{ value: 1, label: "uniform (1.0)", color: "#1565c0" }],
      ...common,
    },
    "Entropy is not recorded for the selected runs (regression records have no probabilities).",
    group,
  );

  // accuracy
  drawLines(
    pAcc,
    {
      series: withData(
        recs.flatMap((r) => [
          { name: `${r.label} accuracy`, color: r.color, data: ld(r, "accuracy") },
          { name: `${r.label} tie-tolerant`, color: r.color, data: ld(r, "tie_tolerant_accuracy"), dashed: true },
        ]),
      ),
      yMin: 0,
      yMax: 1,
      yPercent: true,
      legend: true,
      ...common,
    },
    "Accuracy needs labels: not recorded for the selected runs.",
    group,
  );

  // ties
  drawLines(
    pTies,
    {
      series: withData(recs.map((r) => ({ name: r.label, color: r.color, data: ld(r, "tie_fraction") }))),
      yMin: 0,
      yMax: 1,
      yPercent: true,
      ...common,
    },
    "Tie fraction is not recorded for the selected runs.",
    group,
  );

  // zero logits
  drawLines(
    pZero,
    {
      series: withData(recs.map((r) => ({ name: r.label, color: r.color, data: ld(r, "zero_logit_fraction") }))),
      yMin: 0,
      yMax: 1,
      yPercent: true,
      ...common,
    },
    "Not recorded: only written when the loss takes logits (from_logits=True).",
    group,
  );

  // regression spread
  drawLines(
    pReg,
    {
      series: withData(
        recs.flatMap((r) => [
          { name: `${r.label} output std`, color: r.color, data: ld(r, "output_std") },
          { name: `${r.label} target std`, color: r.color, data: ld(r, "target_std"), dashed: true },
        ]),
      ),
      yMin: 0,
      legend: true,
      ...common,
    },
    "Only recorded for regression outputs; the selected runs are classifiers.",
    group,
  );

  drawTop1(state, pTop1, recs, focus);
  drawShares(pShares, recs, common);

  if (focus) scrollToTestid(root, chartForKind(focus.kind, "collapse"));
}

function indexWindow(steps: number[], first: number, last: number): [number, number] | null {
  if (steps.length === 0) return null;
  const ext: [number, number] = [steps[0], steps[steps.length - 1]];
  const [a, b] = zoomWindow(first, last, ext);
  return [nearestIndex(steps, a), nearestIndex(steps, b)];
}

function drawTop1(state: State, p: ReturnType<typeof chartPanel>, recs: PredRec[], focus: State["focus"]): void {
  const withHist = recs.filter((r) => r.hists.top1_probability && r.hists.top1_probability.steps.length > 0);
  if (withHist.length === 0) {
    notApplicable(p, "No top-1 probability histograms in the selected runs (regression records have none).");
    return;
  }
  const cells = multiLayout(p, withHist.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  withHist.forEach((r, i) => {
    const h = r.hists.top1_probability;
    const hm = histogramHeatmap(h, Math.max(50, Math.min(400, state.width)));
    const inv = r.k ? 1 / r.k : null;
    const bin = inv !== null ? binIndexOf(h.edges, inv) : -1;
    const zoom =
      focus && focus.run === r.run && focus.first !== null
        ? indexWindow(hm.xSteps, focus.first, focus.last ?? focus.first)
        : null;
    const focusIdx = focus && focus.first !== null ? nearestIndex(hm.xSteps, focus.first) : -1;
    drawHeatmapCell(cells[i], {
      xSteps: hm.xSteps,
      yLabels: h.edges.slice(0, -1).map((e) => formatExact(e)),
      cells: hm.cells,
      plotHeight: 260,
      min: 0,
      max: hm.max || 1,
      yName: "top-1 probability",
      markY: bin >= 0 ? { index: bin, label: `1/K = ${formatExact(inv)}` } : null,
      markX: focus && focus.run === r.run && focusIdx >= 0 ? { index: focusIdx, label: `step ${hm.xSteps[focusIdx]}` } : null,
      zoom,
      visualLabel: (v) => formatPercent(v, 0),
      cellTooltip: (x, y, v, count) =>
        `<div>${escapeHtml(r.label)}</div>` +
        `<div>step <b>${escapeHtml(hm.xSteps[x])}</b></div>` +
        `<div>top-1 probability in <b>${escapeHtml(hm.yLabels[y])}</b></div>` +
        `<div><b>${escapeHtml(formatPercent(v, 2))}</b> of rows (${escapeHtml(formatExact(count))} rows)</div>`,
    }, "No top-1 data.", true);
  });
  setPanelPoints(p, cells);
}

function drawShares(
  p: ReturnType<typeof chartPanel>,
  recs: PredRec[],
  common: { zoom: [number, number] | null; markStep: number | null },
): void {
  const withHist = recs.filter((r) => r.hists.predicted_classes && r.hists.predicted_classes.steps.length > 0);
  if (withHist.length === 0) {
    notApplicable(p, "No predicted-class counts in the selected runs (regression records have none).");
    return;
  }
  const cells = multiLayout(p, withHist.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  withHist.forEach((r, i) => {
    const cs = classShares(r.hists.predicted_classes, r.hists.label_classes ?? null, 10);
    const series: LineSpec[] = [];
    cs.series.forEach((s, ci) => {
      series.push({
        name: s.label,
        color: CLASS_COLORS[ci % CLASS_COLORS.length],
        data: lineData({ steps: cs.steps, values: s.predicted }),
        width: 1.8,
        fmt: (v) => formatPercent(v, 2),
      });
    });
    if (cs.hasLabels) {
      cs.series.forEach((s, ci) => {
        series.push({
          name: `${s.label} labels`,
          color: CLASS_COLORS[ci % CLASS_COLORS.length],
          data: lineData({ steps: cs.steps, values: s.labels }),
          dashed: true,
          width: 1,
          fmt: (v) => formatPercent(v, 2),
        });
      });
    }
    const cell = cells[i];
    const div = el("div", { class: "chart tall" });
    cell.appendChild(div);
    const n = series.reduce((a, s) => a + s.data.points.length, 0);
    const opt = lineOption({
      series,
      yMin: 0,
      yMax: 1,
      yPercent: true,
      legend: true,
      zoom: common.zoom,
      markStep: common.markStep,
    }) as Record<string, unknown>;
    (opt.legend as Record<string, unknown>).data = cs.series.map((s) => s.label);
    mountChart(div, opt, n, cell);
  });
  setPanelPoints(p, cells);
}
