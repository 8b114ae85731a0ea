// Prediction-collapse dashboard: a last-step summary of every selected record
// (with the output layer against the loss, from the manifest), then entropy,
// accuracy, top-1 histogram, class shares, ties, zero logits and, for
// regression outputs, their spread and distribution.

import { api } from "../api";
import type { App } from "../app";
import { errorText } from "../app";
import { lineOption, mountChart, type LineSpec } from "../charts";
import { decodeHistogram, decodeNumber, decodeSeries } from "../decode";
import { el, emptyState, errorState, loadingState } from "../dom";
import { escapeHtml, formatExact, formatPercent, formatShort } from "../format";
import { checkOutput } from "../manifest";
import {
  binIndexOf,
  classShares,
  effectiveClasses,
  histogramHeatmap,
  histogramMean,
  histogramRange,
  lastPoint,
  lineData,
  nearestIndex,
  onCommonBins,
  positiveRange,
  stepExtent,
  topClassShare,
  niceEdges,
  zoomWindow,
} from "../shape";
import { runColor } from "../colors";
import { nameSpan } from "../names";
import { selectedRuns, type State } from "../state";
import type { Finding, Histogram, Series } from "../types";
import {
  chartForKind,
  chartPanel,
  drawHeatmapCell,
  drawLines,
  focusBanner,
  loadManifests,
  multiLayout,
  notApplicable,
  runKey,
  scrollToTestid,
  setPanelPoints,
  styleKey,
  type ChartPanel,
  type RunManifest,
} from "./common";

export interface PredRec {
  run: string;
  name: string;
  label: string; // series name: run, or "run · name" when the run has several records
  color: string;
  task: string;
  k: number | null; // effective number of classes
  fromLogits: boolean | null;
  hasLabels: boolean | null;
  scalars: Record<string, Series>;
  hists: Record<string, Histogram>;
}

const CLASS_COLORS = [
  "#f57c00", "#1e88e5", "#43a047", "#8e24aa", "#e53935", "#00acc1", "#6d4c41", "#fdd835", "#3949ab", "#9e9e9e",
];

/** Bins of the regression output distribution (re-binned onto one grid). */
const OUTPUT_BINS = 40;
/** Max / min output or target spread above which the spread chart turns logarithmic. */
const SPREAD_LOG_RATIO = 1e3;

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
  const [results, manifests] = await Promise.all([
    Promise.allSettled(jobs.map((j) => api.predictions(j.run, j.name, state.width))),
    loadManifests(app, runs.map((r) => r.run)),
  ]);
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
      hasLabels: typeof d?.has_labels === "boolean" ? d.has_labels : null,
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

  root.appendChild(summaryPanel(app, recs, manifests));

  const has = (stat: string) => recs.some((r) => (r.scalars[stat]?.steps.length ?? 0) > 0);
  const hasHist = (stat: string) => recs.some((r) => (r.hists[stat]?.steps.length ?? 0) > 0);
  const noLabels = recs.every((r) => r.hasLabels === false);
  // a wrapping key of the runs drawn in a chart (those with one of `stats`)
  const keyed = (p: ChartPanel, stats: string[], extra?: HTMLElement) => {
    const drawn = recs.filter((r) => stats.some((st) => (r.scalars[st]?.steps.length ?? 0) > 0));
    if (drawn.length > 1 || extra) {
      p.controls.appendChild(runKey(drawn.length > 1 ? drawn.map((r) => ({ label: r.label, color: r.color })) : [], extra));
    }
    return p;
  };

  const pEntropy = keyed(
    chartPanel(
      "chart-entropy",
      "Normalised prediction entropy",
      "Mean entropy / log K per record. 1.0 (dashed) = uniform outputs: the model predicts nothing.",
    ),
    ["entropy"],
  );
  const pAcc = keyed(
    chartPanel(
      "chart-accuracy",
      "Argmax accuracy vs tie-tolerant accuracy",
      "A tie-tolerant (in_top_k) accuracy far above the argmax accuracy means tied outputs inflate the reported metric.",
    ),
    ["accuracy", "tie_tolerant_accuracy"],
    styleKey("argmax", "tie-tolerant"),
  );
  const pTop1 = chartPanel(
    "chart-top1-heatmap",
    "Top-1 probability over time",
    "Share of rows per top-1 probability bin (each column sums to 100%). A band at 1/K (dashed) means uniform outputs; healthy models move up toward 1.",
    { wide: true },
  );
  const pShares = chartPanel(
    "chart-class-shares",
    "Predicted-class shares vs label shares",
    noLabels
      ? "Share of rows predicted as each class (legend: class index). One class taking everything = collapse. No labels were recorded."
      : "Solid: share of rows predicted as each class (legend: class index). Dashed: share of the labels. One class taking everything = collapse.",
    { wide: true },
  );
  const pTies = keyed(
    chartPanel(
      "chart-ties",
      "Tie fraction",
      "Rows whose top-1 value occurs more than once (binary: probability exactly 0.5).",
    ),
    ["tie_fraction"],
  );
  const pZero = keyed(
    chartPanel(
      "chart-zero-logits",
      "Zero-logit fraction",
      "Logits exactly 0 (recorded when the loss takes logits). A ReLU on the logits drives this to 100%.",
    ),
    ["zero_logit_fraction"],
  );
  const pReg = keyed(
    chartPanel(
      "chart-regression-spread",
      "Regression output spread",
      "Std of the outputs over the batch against the std of the targets. Outputs collapsing to a constant have std near 0.",
    ),
    ["output_std", "target_std"],
    styleKey("outputs", "targets"),
  );
  const pOut = chartPanel(
    "chart-output-dist",
    "Regression output distribution",
    "Share of the batch's outputs per value bin (each column sums to 100%), on one value axis for all runs. A thin line = a constant output.",
    { wide: true },
  );

  // Panels with data first, in this order; the rest (e.g. classifier charts
  // for regression runs) go last, compact, with why they are empty.
  const order: [ChartPanel, boolean][] = [
    [pEntropy, has("entropy")],
    [pAcc, has("accuracy") || has("tie_tolerant_accuracy")],
    [pTop1, hasHist("top1_probability")],
    [pShares, hasHist("predicted_classes")],
    [pTies, has("tie_fraction")],
    [pZero, has("zero_logit_fraction")],
    [pReg, has("output_std") || has("target_std")],
    [pOut, hasHist("outputs")],
  ];
  const grid = el("div", { class: "grid2" });
  root.appendChild(grid);
  const shown = order.filter(([, ok]) => ok).map(([p]) => p);
  // a lone half-width panel before a wide one leaves a hole: widen it
  shown.forEach((p, i) => {
    const wide = p.panel.classList.contains("wide");
    if (wide) return;
    let col = 0;
    for (let k = 0; k < i; k++) col = shown[k].panel.classList.contains("wide") ? 0 : (col + 1) % 2;
    const next = shown[i + 1];
    if (col === 0 && (!next || next.panel.classList.contains("wide"))) p.panel.classList.add("wide");
  });
  grid.append(...shown.map((p) => p.panel));
  const missing = order.filter(([, ok]) => !ok).map(([p]) => p);
  if (missing.length) {
    const naGrid = el("div", { class: "grid-na" });
    for (const p of missing) {
      p.panel.classList.remove("wide");
      p.panel.classList.add("na-panel");
      naGrid.appendChild(p.panel);
    }
    root.appendChild(
      el("div", { class: "section-title", style: { marginTop: "16px" } }, "Not recorded for the selected runs"),
    );
    root.appendChild(naGrid);
  }

  const ld = (r: PredRec, stat: string, log = false) => lineData(r.scalars[stat] ?? { steps: [], values: [] }, { log });
  const withData = (specs: LineSpec[]) => specs.filter((s) => s.data.points.length > 0);

  drawLines(
    pEntropy,
    {
      series: withData(recs.map((r) => ({ name: r.label, color: r.color, data: ld(r, "entropy") }))),
      yMin: 0,
      yMax: 1,
      refLines: [{ value: 1, label: "uniform (1.0)", color: "#1565c0" }],
      legend: false,
      ...common,
    },
    "Entropy is only recorded for classifiers (regression outputs have no probabilities).",
    group,
  );

  drawLines(
    pAcc,
    {
      series: withData(
        recs.flatMap((r) => [
          { name: `${r.label} · argmax`, color: r.color, data: ld(r, "accuracy") },
          { name: `${r.label} · tie-tolerant`, color: r.color, data: ld(r, "tie_tolerant_accuracy"), dashed: true },
        ]),
      ),
      yMin: 0,
      yMax: 1,
      yPercent: true,
      legend: false,
      ...common,
    },
    noLabels
      ? "No labels were recorded with these predictions, so there is no accuracy."
      : "Accuracy is only recorded for classifiers with labels.",
    group,
  );

  drawLines(
    pTies,
    {
      series: withData(recs.map((r) => ({ name: r.label, color: r.color, data: ld(r, "tie_fraction") }))),
      yMin: 0,
      yMax: 1,
      yPercent: true,
      legend: false,
      ...common,
    },
    "Tie fractions are only recorded for classifiers.",
    group,
  );

  drawLines(
    pZero,
    {
      series: withData(recs.map((r) => ({ name: r.label, color: r.color, data: ld(r, "zero_logit_fraction") }))),
      yMin: 0,
      yMax: 1,
      yPercent: true,
      legend: false,
      ...common,
    },
    "Only recorded when the loss takes logits (from_logits=True).",
    group,
  );

  // an exploding output spread (up to 1e30 and beyond) gets a log axis, on
  // which the target spread stays visible
  const spreadKeys = ["output_std", "target_std"];
  const spread = positiveRange(recs.flatMap((r) => spreadKeys.flatMap((k) => r.scalars[k]?.values ?? [])));
  const spreadLog = spread !== null && spread[1] / spread[0] > SPREAD_LOG_RATIO;
  drawLines(
    pReg,
    {
      series: withData(
        recs.flatMap((r) => [
          { name: `${r.label} · output std`, color: r.color, data: ld(r, "output_std", spreadLog) },
          { name: `${r.label} · target std`, color: r.color, data: ld(r, "target_std", spreadLog), dashed: true },
        ]),
      ),
      yMin: spreadLog ? undefined : 0,
      yLog: spreadLog,
      legend: false,
      ...common,
    },
    "Only recorded for regression outputs.",
    group,
  );

  drawTop1(state, pTop1, recs, focus);
  drawShares(pShares, recs, common);
  drawOutputs(state, pOut, recs, focus);

  if (focus) {
    const regression = recs.filter((r) => r.run === focus.run).every((r) => r.task === "regression");
    scrollToTestid(root, chartForKind(focus.kind, "collapse", regression));
  }
}

// ---------------------------------------------------------------- summary

/** Summary cells a finding kind is about (highlighted in that run's row). */
function flaggedCells(findings: Finding[], regression: boolean): Set<string> {
  const out = new Set<string>();
  for (const f of findings) {
    switch (f.kind) {
      case "prediction_collapse":
        if (regression) out.add("output_std");
        else ["entropy", "top1"].forEach((c) => out.add(c));
        break;
      case "tied_predictions":
        ["tie_fraction", "accuracy", "tie_tolerant_accuracy"].forEach((c) => out.add(c));
        break;
      case "output_activation_mismatch":
        ["output", "zero_logit_fraction"].forEach((c) => out.add(c));
        break;
      case "class_collapse":
      case "class_bias":
        out.add("top_class");
        break;
      case "nonfinite":
        if (!f.layer) out.add("nonfinite");
        break;
    }
  }
  return out;
}

interface SummaryColumn {
  id: string;
  title: string;
  hint: string;
  value: (r: PredRec) => { text: string; title?: string; bad?: boolean } | null;
}

function summaryPanel(app: App, recs: PredRec[], manifests: Map<string, RunManifest>): HTMLElement {
  const last = (r: PredRec, stat: string) => lastPoint(r.scalars[stat]);
  const pct = (r: PredRec, stat: string) => {
    const p = last(r, stat);
    return p ? { text: formatPercent(p.value, p.value === 1 || p.value === 0 ? 0 : 1), title: `step ${p.step}: ${formatExact(p.value)}` } : null;
  };
  const cols: SummaryColumn[] = [
    {
      id: "output",
      title: "Output activation · loss",
      hint: "The output layer's activation against the loss's from_logits (from the model manifest); hover a cell for the loss.",
      value: (r) => {
        const m = manifests.get(r.run);
        if (!m?.manifest) return null;
        const c = checkOutput(m.manifest);
        if (!c.layer) return null;
        const fl = c.fromLogits === null ? "" : ` · from_logits=${c.fromLogits ? "True" : "False"}`;
        const text = `${c.layer.name}: ${c.activation}${fl}`;
        const src = m.source && m.source !== r.run ? ` (manifest of ${m.source})` : "";
        return {
          text,
          title: `loss ${c.lossName}. ${c.problem ?? "The output activation matches the loss."}${src}`,
          bad: c.problem !== null,
        };
      },
    },
    {
      id: "entropy",
      title: "Entropy",
      hint: "Normalised entropy at the last step; 1.0 = uniform outputs.",
      value: (r) => {
        const p = last(r, "entropy");
        return p
          ? { text: Number.isFinite(p.value) ? p.value.toFixed(2) : formatShort(p.value), title: `step ${p.step}: ${formatExact(p.value)}` }
          : null;
      },
    },
    {
      id: "top1",
      title: "Mean top-1 p",
      hint: "Mean top-1 probability at the last step (from the histogram), against 1/K, the value of uniform outputs.",
      value: (r) => {
        const h = r.hists.top1_probability;
        if (!h || h.steps.length === 0) return null;
        const i = h.steps.length - 1;
        const m = histogramMean(h.edges, h.counts[i]);
        if (m === null) return null;
        return {
          text: `${m.toFixed(2)}${r.k ? ` (1/K = 1/${r.k})` : ""}`,
          title: `step ${h.steps[i]}: ${formatExact(m)} (bin centres weighted by rows)${r.k ? `; 1/K = ${formatExact(1 / r.k)}` : ""}`,
        };
      },
    },
    {
      id: "tie_fraction",
      title: "Ties",
      hint: "Rows whose top-1 value is tied, at the last step.",
      value: (r) => pct(r, "tie_fraction"),
    },
    {
      id: "zero_logit_fraction",
      title: "Zero logits",
      hint: "Logits exactly 0 at the last step.",
      value: (r) => pct(r, "zero_logit_fraction"),
    },
    {
      id: "top_class",
      title: "Top class",
      hint: "The most predicted class and its share of the rows at the last step.",
      value: (r) => {
        const t = topClassShare(r.hists.predicted_classes);
        return t && r.task !== "regression"
          ? { text: `${t.cls}: ${formatPercent(t.share, 0)}`, title: `step ${t.step}` }
          : null;
      },
    },
    { id: "accuracy", title: "Acc. argmax", hint: "Argmax accuracy at the last step (ties go to the lowest class).", value: (r) => pct(r, "accuracy") },
    {
      id: "tie_tolerant_accuracy",
      title: "Acc. tie-tolerant",
      hint: "in_top_k accuracy at the last step: a tie counts as a hit.",
      value: (r) => pct(r, "tie_tolerant_accuracy"),
    },
    {
      id: "output_std",
      title: "Output std / target std",
      hint: "Regression: spread of the outputs against the spread of the targets at the last step.",
      value: (r) => {
        const o = last(r, "output_std");
        const t = last(r, "target_std");
        if (!o && !t) return null;
        return {
          text: `${o ? formatShort(o.value) : "–"} / ${t ? formatShort(t.value) : "–"}`,
          title: `step ${o?.step ?? t?.step}`,
        };
      },
    },
    {
      id: "nonfinite",
      title: "NaN/Inf outputs",
      hint: "Non-finite outputs in the last record.",
      value: (r) => {
        const p = last(r, "nonfinite");
        return p && p.value !== 0 ? { text: formatShort(p.value), title: `step ${p.step}`, bad: true } : null;
      },
    },
  ];
  const cells = recs.map((r) => cols.map((c) => c.value(r)));
  const used = cols.map((_, ci) => cells.some((row) => row[ci] !== null));
  const table = el("table", { class: "summary-table" });
  table.appendChild(
    el(
      "tr",
      {},
      el("th", {}, "Run"),
      ...cols.filter((_, ci) => used[ci]).map((c) => el("th", { title: c.hint }, c.title)),
    ),
  );
  recs.forEach((r, ri) => {
    const info = app.state.runs.find((x) => x.run === r.run);
    const flagged = flaggedCells(info?.findings ?? [], r.task === "regression");
    const row = el(
      "tr",
      { data: { run: r.run } },
      el(
        "td",
        { class: "run-cell" },
        el("span", { class: "key-swatch", style: { background: r.color } }),
        nameSpan(r.label),
      ),
    );
    cols.forEach((c, ci) => {
      if (!used[ci]) return;
      const v = cells[ri][ci];
      // non-finite values are always red, like everywhere else in the tab
      const bad = !!v && (v.bad || flagged.has(c.id) || /^(NaN|-?Infinity)/.test(v.text));
      row.appendChild(el("td", { class: bad ? "bad" : undefined, title: v?.title }, v ? v.text : "–"));
    });
    table.appendChild(row);
  });
  const steps = recs.map((r) => lastPoint(r.scalars.count ?? r.scalars.entropy ?? r.scalars.output_std)?.step);
  const stepNote = steps.every((s) => s === steps[0] && s !== undefined) ? ` (step ${steps[0]})` : "";
  return el(
    "div",
    { class: "panel summary", testid: "collapse-summary" },
    el(
      "h3",
      {},
      `At the last recorded step${stepNote}`,
      el("span", { class: "muted h-note" }, "red: the values behind this run's findings · hover a header for its meaning"),
    ),
    el("div", { class: "summary-scroll" }, table),
  );
}

// ---------------------------------------------------------------- heatmaps

function indexWindow(steps: number[], first: number, last: number): [number, number] | null {
  if (steps.length === 0) return null;
  const ext: [number, number] = [steps[0], steps[steps.length - 1]];
  const [a, b] = zoomWindow(first, last, ext);
  return [nearestIndex(steps, a), nearestIndex(steps, b)];
}

function drawTop1(state: State, p: ChartPanel, recs: PredRec[], focus: State["focus"]): void {
  // top-1 probability bins are fixed ([0, 1]): per-step edges are not expected here
  const withHist = recs.filter((r) => r.hists.top1_probability && r.hists.top1_probability.steps.length > 0);
  if (withHist.length === 0) {
    notApplicable(p, "Top-1 probabilities are only recorded for classifiers.");
    return;
  }
  const cells = multiLayout(p, withHist.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  withHist.forEach((r, i) => {
    const h = onCommonBins(r.hists.top1_probability);
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
      plotHeight: 150,
      min: 0,
      max: hm.max || 1,
      yName: "top-1 probability",
      markY: bin >= 0 ? { index: bin, label: `1/K = ${formatShort(inv)}` } : null,
      markX: focus && focus.run === r.run && focusIdx >= 0 ? { index: focusIdx, label: `step ${hm.xSteps[focusIdx]}` } : null,
      zoom,
      visualLabel: (v) => formatPercent(v, 0),
      cellTooltip: (x, y, v, count) =>
        `<div>${escapeHtml(r.label)}</div>` +
        `<div>step <b>${escapeHtml(hm.xSteps[x])}</b></div>` +
        `<div>top-1 probability in <b>${escapeHtml(hm.yLabels[y])}</b></div>` +
        `<div><b>${escapeHtml(formatPercent(v, 2))}</b> of rows (${escapeHtml(formatExact(count))} rows)</div>`,
    }, "No top-1 data.", false);
  });
  setPanelPoints(p, cells);
}

/**
 * Regression outputs: the `outputs` histogram's bins follow each batch
 * (`step_edges`), so every record is re-binned onto one value grid shared by
 * all runs, which keeps a constant output visibly thin next to a healthy one.
 */
function drawOutputs(state: State, p: ChartPanel, recs: PredRec[], focus: State["focus"]): void {
  const withHist = recs.filter((r) => r.hists.outputs && r.hists.outputs.steps.length > 0);
  if (withHist.length === 0) {
    notApplicable(p, "Output distributions are only recorded for regression outputs.");
    return;
  }
  const range = histogramRange(withHist.map((r) => r.hists.outputs));
  const grid = range ? niceEdges(range[0], range[1], OUTPUT_BINS) : null;
  const cells = multiLayout(p, withHist.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  withHist.forEach((r, i) => {
    const src = r.hists.outputs;
    const h = src.stepEdges ? onCommonBins(src, grid) : src;
    const hm = histogramHeatmap(h, Math.max(50, Math.min(400, state.width)));
    const zoom =
      focus && focus.run === r.run && focus.first !== null
        ? indexWindow(hm.xSteps, focus.first, focus.last ?? focus.first)
        : null;
    drawHeatmapCell(
      cells[i],
      {
        xSteps: hm.xSteps,
        yLabels: h.edges.slice(0, -1).map((e) => formatShort(e)),
        cells: hm.cells,
        plotHeight: 150,
        min: 0,
        max: hm.max || 1,
        yName: "output value",
        zoom,
        visualLabel: (v) => formatPercent(v, 0),
        cellTooltip: (x, y, v) =>
          `<div>${escapeHtml(r.label)}</div>` +
          `<div>step <b>${escapeHtml(hm.xSteps[x])}</b></div>` +
          `<div>output in [${escapeHtml(formatExact(h.edges[y]))}, ${escapeHtml(formatExact(h.edges[y + 1]))})</div>` +
          `<div><b>${escapeHtml(formatPercent(v, 2))}</b> of the batch</div>`,
      },
      "No output histogram.",
      false,
    );
  });
  setPanelPoints(p, cells);
}

function drawShares(
  p: ChartPanel,
  recs: PredRec[],
  common: { zoom: [number, number] | null; markStep: number | null },
): void {
  const withHist = recs.filter((r) => r.hists.predicted_classes && r.hists.predicted_classes.steps.length > 0);
  if (withHist.length === 0) {
    notApplicable(p, "Predicted classes are only recorded for classifiers.");
    return;
  }
  const cells = multiLayout(p, withHist.map((r) => ({ run: r.run, label: r.label, color: r.color })));
  withHist.forEach((r, i) => {
    // class-count bins are fixed ([i, i+1) per class): step_edges do not apply
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
    const div = el("div", { class: "chart" });
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
    const legend = opt.legend as Record<string, unknown>;
    legend.data = cs.series.map((s) => s.label);
    // "class 3" -> "3": the panel's subtitle says the legend is the class index
    legend.formatter = (name: string) => name.replace(/^class /, "");
    legend.itemGap = 8;
    legend.itemWidth = 14;
    mountChart(div, opt, n, cell);
  });
  setPanelPoints(p, cells);
}
