// Pure data shaping for the charts: no DOM, no ECharts. Unit-tested.

import type { Histogram, Series } from "./types";

// ---------------------------------------------------------------- series

/** One drawn point: [step, y for the chart (null = gap), original value]. */
export type LinePoint = [number, number | null, number | null];

export interface NonFiniteRange {
  from: number;
  to: number;
  label: string; // "NaN", "Infinity", "-Infinity" or "non-finite" when mixed
}

export interface LineData {
  points: LinePoint[];
  nonFinite: NonFiniteRange[];
  finiteCount: number;
}

/**
 * Turns a decoded series into chart points. Non-finite values become gaps and
 * are reported as step ranges (drawn as red areas); on a log axis, values <= 0
 * become gaps too (the tooltip still shows the original value).
 */
export function lineData(s: Series, opts: { log?: boolean } = {}): LineData {
  const points: LinePoint[] = [];
  let finiteCount = 0;
  for (let i = 0; i < s.steps.length; i++) {
    const v = s.values[i];
    let y: number | null = v;
    if (v === null || !Number.isFinite(v)) y = null;
    else if (opts.log && v <= 0) y = null;
    if (y !== null) finiteCount++;
    points.push([s.steps[i], y, v]);
  }
  return { points, nonFinite: nonFiniteRanges(s.steps, s.values), finiteCount };
}

function nfLabel(v: number): string {
  return Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
}

/** Contiguous runs of non-finite values, as step ranges. */
export function nonFiniteRanges(steps: number[], values: (number | null)[]): NonFiniteRange[] {
  const out: NonFiniteRange[] = [];
  let cur: NonFiniteRange | null = null;
  for (let i = 0; i < steps.length; i++) {
    const v = values[i];
    const bad = v !== null && !Number.isFinite(v);
    if (bad) {
      const label = nfLabel(v as number);
      if (cur) {
        cur.to = steps[i];
        if (cur.label !== label) cur.label = "non-finite";
      } else {
        cur = { from: steps[i], to: steps[i], label };
      }
    } else if (v !== null && cur) {
      out.push(cur);
      cur = null;
    }
  }
  if (cur) out.push(cur);
  return out;
}

/** Indices of at most `max` evenly spaced elements of 0..n-1, first and last kept. */
export function downsampleIndices(n: number, max: number): number[] {
  if (n <= 0) return [];
  const m = Math.max(1, Math.floor(max));
  if (n <= m) return Array.from({ length: n }, (_, i) => i);
  if (m === 1) return [n - 1];
  const out: number[] = [];
  for (let k = 0; k < m; k++) {
    const i = Math.round((k * (n - 1)) / (m - 1));
    if (out.length === 0 || out[out.length - 1] !== i) out.push(i);
  }
  return out;
}

export function downsampleSeries(s: Series, max: number): Series {
  const idx = downsampleIndices(s.steps.length, max);
  return { steps: idx.map((i) => s.steps[i]), values: idx.map((i) => s.values[i]) };
}

/** Looks up `s`'s value at each of `steps` (exact step match; null when absent). */
export function alignToSteps(steps: number[], s: Series): (number | null)[] {
  const m = new Map<number, number | null>();
  s.steps.forEach((st, i) => m.set(st, s.values[i]));
  return steps.map((st) => (m.has(st) ? (m.get(st) as number | null) : null));
}

/** Index of the element of sorted `steps` nearest to `step` (-1 when empty). */
export function nearestIndex(steps: number[], step: number): number {
  if (steps.length === 0) return -1;
  let lo = 0;
  let hi = steps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] < step) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(steps[lo - 1] - step) <= Math.abs(steps[lo] - step)) return lo - 1;
  return lo;
}

/** Min and max step over several step arrays (null when all empty). */
export function stepExtent(stepArrays: number[][]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of stepArrays) {
    if (a.length === 0) continue;
    lo = Math.min(lo, a[0]);
    hi = Math.max(hi, a[a.length - 1]);
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * Zoom window around a finding's steps: the range with a margin, clamped
 * to the data extent. A single step gets a window of 10% of the extent.
 */
export function zoomWindow(
  first: number,
  last: number,
  extent: [number, number],
): [number, number] {
  const [lo, hi] = extent;
  const span = Math.max(1, hi - lo);
  const a = Math.min(first, last);
  const b = Math.max(first, last);
  const margin = Math.max((b - a) * 0.15, span * 0.05, 1);
  return [Math.max(lo, Math.floor(a - margin)), Math.min(hi, Math.ceil(b + margin))];
}

// ---------------------------------------------------------------- histograms

/** Each row divided by its sum (all-zero rows stay zero). */
export function rowShares(counts: number[][]): number[][] {
  return counts.map((row) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total > 0 ? row.map((c) => c / total) : row.map(() => 0);
  });
}

/** Label of histogram bin i: "[a, b)" with compact numbers. */
export function binLabels(edges: number[], digits = 3): string[] {
  const f = (x: number) => (Number.isFinite(x) ? String(Number(x.toPrecision(digits))) : String(x));
  const out: string[] = [];
  for (let i = 0; i + 1 < edges.length; i++) out.push(`${f(edges[i])}–${f(edges[i + 1])}`);
  return out;
}

/** Index of the bin containing x (the last bin includes its right edge); -1 outside. */
export function binIndexOf(edges: number[], x: number): number {
  const n = edges.length - 1;
  if (n < 1 || !(x >= edges[0]) || !(x <= edges[n])) return -1;
  for (let i = 0; i < n; i++) {
    if (x < edges[i + 1]) return i;
  }
  return n - 1;
}

export interface HeatmapData {
  xSteps: number[]; // one column per step
  yLabels: string[]; // one row per bin / variable
  /** [column, row, value, raw count or extra] cells; zero cells are left out. */
  cells: [number, number, number, number][];
  max: number;
}

/**
 * Steps x bins heatmap of a histogram series, each column normalised to the
 * share of entries per bin (so columns with different counts compare).
 */
export function histogramHeatmap(h: Histogram, maxColumns = Infinity): HeatmapData {
  const idx = downsampleIndices(h.steps.length, maxColumns);
  const shares = rowShares(idx.map((i) => h.counts[i]));
  const cells: [number, number, number, number][] = [];
  let max = 0;
  shares.forEach((row, x) => {
    row.forEach((v, y) => {
      if (v > 0) {
        cells.push([x, y, v, h.counts[idx[x]][y]]);
        if (v > max) max = v;
      }
    });
  });
  return { xSteps: idx.map((i) => h.steps[i]), yLabels: binLabels(h.edges), cells, max };
}

// ---------------------------------------------------------------- class shares

export interface ClassShareSeries {
  label: string; // "class 3" or "other (7 classes)"
  classes: number[];
  predicted: number[]; // share per step
  labels: (number | null)[]; // share per step, null when no label record at that step
}

export interface ClassShares {
  steps: number[];
  series: ClassShareSeries[];
  hasLabels: boolean;
}

/**
 * Predicted-class shares over time against label shares. Classes are the bins
 * of the predicted_classes / label_classes histograms ([i, i+1)). With many
 * classes, the `maxClasses - 1` classes with the largest peak share are kept
 * and the rest summed into "other".
 */
export function classShares(
  predicted: Histogram,
  labels: Histogram | null,
  maxClasses = 10,
): ClassShares {
  const steps = predicted.steps;
  const k = Math.max(0, predicted.edges.length - 1, labels ? labels.edges.length - 1 : 0);
  const pred = rowShares(predicted.counts.map((r) => padTo(r, k)));
  const labelRowByStep = new Map<number, number[]>();
  if (labels) {
    const ls = rowShares(labels.counts.map((r) => padTo(r, k)));
    labels.steps.forEach((st, i) => labelRowByStep.set(st, ls[i]));
  }
  const lab: (number[] | null)[] = steps.map((st) => labelRowByStep.get(st) ?? null);
  const classIds = Array.from({ length: k }, (_, i) => i);
  let groups: number[][];
  if (k <= maxClasses) {
    groups = classIds.map((c) => [c]);
  } else {
    const peak = classIds.map((c) => {
      let m = 0;
      pred.forEach((row) => (m = Math.max(m, row[c])));
      lab.forEach((row) => row && (m = Math.max(m, row[c])));
      return m;
    });
    const keep = [...classIds]
      .sort((a, b) => peak[b] - peak[a] || a - b)
      .slice(0, Math.max(1, maxClasses - 1))
      .sort((a, b) => a - b);
    const kept = new Set(keep);
    groups = [...keep.map((c) => [c]), classIds.filter((c) => !kept.has(c))];
  }
  const series = groups.map((g) => ({
    label: g.length === 1 ? `class ${g[0]}` : `other (${g.length} classes)`,
    classes: g,
    predicted: pred.map((row) => g.reduce((a, c) => a + row[c], 0)),
    labels: lab.map((row) => (row ? g.reduce((a, c) => a + row[c], 0) : null)),
  }));
  return { steps, series, hasLabels: labels !== null && labels.steps.length > 0 };
}

function padTo(row: number[], k: number): number[] {
  if (row.length >= k) return row.slice(0, k);
  return [...row, ...new Array<number>(k - row.length).fill(0)];
}

/** Number of classes of a prediction record (binary has 2 classes for top-1). */
export function effectiveClasses(task: string, numClasses: number | null): number | null {
  if (task === "binary") return 2;
  if (numClasses === null || !Number.isFinite(numClasses) || numClasses < 1) return null;
  return numClasses;
}

// ---------------------------------------------------------------- gradients

export type CellKind = "finite" | "zero" | "nonfinite";

export interface GradHeatmap {
  xSteps: number[];
  variables: string[];
  /** [stepIndex, variableIndex, log10(norm), norm] for positive finite norms */
  cells: [number, number, number, number][];
  /** [stepIndex, variableIndex, 0, 0] for exactly zero norms */
  zeroCells: [number, number, number, number][];
  /** [stepIndex, variableIndex, 0, NaN|±Infinity] for non-finite norms */
  nonFiniteCells: [number, number, number, number][];
  min: number;
  max: number;
}

/**
 * Heatmap of log10 gradient norm: one row per variable (depth order), one
 * column per step. Zero and non-finite norms are separate cell lists so they
 * can be drawn in fixed colours.
 */
export function gradNormHeatmap(
  variables: string[],
  steps: number[],
  norm: (number | null)[][],
): GradHeatmap {
  const cells: GradHeatmap["cells"] = [];
  const zeroCells: GradHeatmap["zeroCells"] = [];
  const nonFiniteCells: GradHeatmap["nonFiniteCells"] = [];
  let min = Infinity;
  let max = -Infinity;
  variables.forEach((_, vi) => {
    const row = norm[vi] ?? [];
    steps.forEach((_s, si) => {
      const v = row[si];
      if (v === null || v === undefined) return;
      if (!Number.isFinite(v)) nonFiniteCells.push([si, vi, 0, v]);
      else if (v <= 0) zeroCells.push([si, vi, 0, v]);
      else {
        const l = Math.log10(v);
        cells.push([si, vi, l, v]);
        if (l < min) min = l;
        if (l > max) max = l;
      }
    });
  });
  if (min > max) {
    min = 0;
    max = 0;
  }
  return { xSteps: steps, variables, cells, zeroCells, nonFiniteCells, min, max };
}

export interface ProfileEntry {
  variable: string;
  values: Record<string, number | null>; // stat -> value at that step
}

/** Every statistic of every variable at column `stepIndex` of the gradients matrix. */
export function profileAt(
  variables: string[],
  matrix: Record<string, (number | null)[][]>,
  stepIndex: number,
): ProfileEntry[] {
  return variables.map((variable, vi) => {
    const values: Record<string, number | null> = {};
    for (const [stat, m] of Object.entries(matrix)) {
      const v = m?.[vi]?.[stepIndex];
      values[stat] = v === undefined ? null : v;
    }
    return { variable, values };
  });
}

/** Row `vi` of a stat matrix as a series over `steps`. */
export function matrixRow(
  steps: number[],
  matrix: (number | null)[][] | undefined,
  vi: number,
): Series {
  const row = matrix?.[vi] ?? [];
  return { steps, values: steps.map((_, i) => (row[i] === undefined ? null : row[i])) };
}

/** Whether a matrix row has at least one non-null value. */
export function rowHasData(matrix: (number | null)[][] | undefined, vi: number): boolean {
  return (matrix?.[vi] ?? []).some((v) => v !== null && v !== undefined);
}

/** Strips the path prefix common to all variables ("sequential/dense/kernel" -> "dense/kernel"). */
export function shortNames(paths: string[]): string[] {
  if (paths.length < 2) return paths.map((p) => p);
  const split = paths.map((p) => p.split("/"));
  let common = 0;
  const minLen = Math.min(...split.map((s) => s.length));
  while (common < minLen - 1 && split.every((s) => s[common] === split[0][common])) common++;
  return split.map((s) => s.slice(common).join("/"));
}

/**
 * Index of the variable a finding's layer refers to: the exact path, else the
 * first variable with a path segment (or segment prefix chain) equal to the
 * layer name, else the first containing it; -1 when none.
 */
export function matchVariable(variables: string[], layer: string | null | undefined): number {
  if (!layer) return -1;
  const exact = variables.indexOf(layer);
  if (exact >= 0) return exact;
  const lsegs = layer.split("/");
  const matches = variables
    .map((v, i) => ({ segs: v.split("/"), i }))
    .filter(({ segs }) => {
      for (let k = 0; k + lsegs.length <= segs.length; k++) {
        if (lsegs.every((l, j) => segs[k + j] === l)) return true;
      }
      return false;
    });
  if (matches.length > 0) {
    // prefer the layer's kernel over its bias
    const kernel = matches.find(({ segs }) => /kernel|weight|^w$/i.test(segs[segs.length - 1]));
    return (kernel ?? matches[0]).i;
  }
  return variables.findIndex((v) => v.includes(layer));
}

// ---------------------------------------------------------------- findings & runs

export type Dashboard = "collapse" | "gradients" | "train_mode";

/** Kinds about layers that behave differently in training (Dropout, BatchNormalization). */
export const TRAIN_MODE_KINDS = new Set([
  "train_mode_inactive",
  "train_mode_overridden",
  "training_arg_missing",
  "dropout_rate_zero",
  "frozen_batchnorm",
]);

/** What a dashboard is called on buttons and links. */
export function dashboardTitle(dash: Dashboard): string {
  return dash === "gradients" ? "gradients" : dash === "train_mode" ? "train mode" : "prediction collapse";
}

/** Kinds the diagnosis emits (tb_plugin/diagnosis.py), by the dashboard that shows them. */
const COLLAPSE_KINDS = new Set([
  "prediction_collapse",
  "tied_predictions",
  "class_collapse",
  "class_bias",
  // about the output layer vs the loss: its symptoms (zero logits, uniform
  // outputs, ties) are on the collapse dashboard, not in the gradients
  "output_activation_mismatch",
]);
const GRADIENT_KINDS = new Set(["exploding_gradients", "vanishing_gradients", "dead_units"]);

const GRADIENT_KIND = /grad|vanish|explod|update|weight|dead|first_last|saturat|variable/i;

/** Evidence keys of findings about variables (gradients, weights). */
const GRADIENT_EVIDENCE = ["variable", "variables_affected", "first_nonfinite_step", "first_last_ratio", "per_layer"];
/** Evidence keys of findings about the predictions. */
const PREDICTION_EVIDENCE = [
  "records_with_nonfinite",
  "nonfinite_outputs_first",
  "normalized_entropy",
  "tie_fraction",
  "output_std",
  "predicted_class",
];

/**
 * Which dashboard a finding opens. Known kinds by name; otherwise (e.g.
 * "nonfinite", which is about either the gradients or the predictions) by
 * what the finding is about: gradient-like kinds, evidence about variables,
 * or a layer naming one of the run's gradient variables open the gradients
 * dashboard; evidence about predictions, or nothing, the collapse one.
 */
export function dashboardFor(
  kind: string,
  evidence?: Record<string, unknown> | null,
  layer?: string | null,
  variables: string[] = [],
): Dashboard {
  if (TRAIN_MODE_KINDS.has(kind)) return "train_mode";
  if (COLLAPSE_KINDS.has(kind)) return "collapse";
  if (GRADIENT_KINDS.has(kind)) return "gradients";
  if (GRADIENT_KIND.test(kind)) return "gradients";
  const ev = evidence && typeof evidence === "object" ? evidence : {};
  if (GRADIENT_EVIDENCE.some((k) => k in ev)) return "gradients";
  if (PREDICTION_EVIDENCE.some((k) => k in ev)) return "collapse";
  if (layer && (kind === "nonfinite" || variables.includes(layer) || matchVariable(variables, layer) >= 0)) {
    return "gradients";
  }
  return "collapse";
}

/** The sibling train/validation run of a run (same parent directory), if listed. */
export function companionRuns(run: string, allRuns: string[]): string[] {
  const i = run.lastIndexOf("/");
  const parent = i >= 0 ? run.slice(0, i + 1) : "";
  const leaf = i >= 0 ? run.slice(i + 1) : run;
  const pairs: Record<string, string[]> = {
    train: ["validation", "val", "eval"],
    validation: ["train"],
    val: ["train"],
    eval: ["train"],
  };
  const want = pairs[leaf];
  if (!want) return [];
  return want.map((w) => parent + w).filter((r) => allRuns.includes(r));
}

/** The `width` query parameter for a chart of `px` pixels: about one step per pixel. */
export function requestWidth(px: number): number {
  if (!Number.isFinite(px) || px <= 0) return 500;
  return Math.max(100, Math.min(1000, Math.round(px)));
}

// ---------------------------------------------------------------- moving-bin histograms

/**
 * Finite [min, max] over the edges of histograms, per-step edges included
 * (null when there are none).
 */
export function histogramRange(hs: Histogram[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  const see = (e: number[]) => {
    for (const x of e) {
      if (Number.isFinite(x)) {
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
    }
  };
  for (const h of hs) {
    if (h.steps.length === 0) continue;
    if (h.stepEdges) {
      h.stepEdges.forEach((e, i) => {
        if ((h.counts[i] ?? []).some((c) => c > 0)) see(e);
      });
    } else {
      see(h.edges);
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

/** [lo, hi], or a range around lo when it has zero width (all values equal). */
function widenedRange(lo: number, hi: number): [number, number] {
  if (hi > lo) return [lo, hi];
  const pad = lo === 0 ? 0.5 : Math.abs(lo) * 0.05;
  return [lo - pad, hi + pad];
}

/** `bins` equal bins over [lo, hi]; a zero-width range is widened around its value. */
export function uniformEdges(lo: number, hi: number, bins: number): number[] {
  const [a, b] = widenedRange(lo, hi);
  const n = Math.max(1, Math.floor(bins));
  const out: number[] = [];
  for (let i = 0; i <= n; i++) out.push(i === n ? b : a + ((b - a) * i) / n);
  return out;
}

/**
 * Re-bins one histogram row (bins `edges`) onto the bins `grid`, spreading
 * each bin's count uniformly over its width; a zero-width bin (a batch whose
 * values are all equal) goes whole into the grid bin holding its value.
 * Values outside the grid are clamped into the first / last bin.
 */
export function rebinRow(edges: number[], counts: number[], grid: number[]): number[] {
  const g = grid.length - 1;
  const out = new Array<number>(Math.max(0, g)).fill(0);
  if (g < 1) return out;
  const clampBin = (x: number) => {
    if (x <= grid[0]) return 0;
    if (x >= grid[g]) return g - 1;
    const i = binIndexOf(grid, x);
    return i < 0 ? g - 1 : i;
  };
  for (let b = 0; b + 1 < edges.length && b < counts.length; b++) {
    const n = counts[b];
    if (!(n > 0)) continue;
    const a = edges[b];
    const c = edges[b + 1];
    if (!Number.isFinite(a) || !Number.isFinite(c)) continue;
    if (!(c > a)) {
      out[clampBin(a)] += n;
      continue;
    }
    // the part below / above the grid is clamped into the end bins
    if (a < grid[0]) out[0] += (n * (Math.min(c, grid[0]) - a)) / (c - a);
    if (c > grid[g]) out[g - 1] += (n * (c - Math.max(a, grid[g]))) / (c - a);
    for (let k = Math.max(0, clampBin(a)); k < g; k++) {
      const lo = Math.max(a, grid[k]);
      const hi = Math.min(c, grid[k + 1]);
      if (grid[k] >= c) break;
      if (hi > lo) out[k] += (n * (hi - lo)) / (c - a);
    }
  }
  return out;
}

/**
 * A histogram series on fixed bins: when it carries per-step edges
 * (`stepEdges`), every row is re-binned onto `grid` (default: `bins` equal
 * bins over its own range); without them it is returned as it is.
 */
export function onCommonBins(h: Histogram, grid?: number[] | null, bins = 40): Histogram {
  if (!h.stepEdges) return h;
  const r = histogramRange([h]);
  const g = grid ?? (r ? uniformEdges(r[0], r[1], bins) : null);
  if (!g || g.length < 2) return { edges: h.edges, steps: h.steps, counts: h.counts };
  return {
    edges: g,
    steps: h.steps,
    counts: h.counts.map((row, i) => rebinRow(h.stepEdges?.[i] ?? h.edges, row, g)),
  };
}

// ---------------------------------------------------------------- summaries

/** Count-weighted mean of the bin centres of one histogram row (null when empty). */
export function histogramMean(edges: number[], counts: number[]): number | null {
  let total = 0;
  let sum = 0;
  for (let b = 0; b + 1 < edges.length && b < counts.length; b++) {
    const n = counts[b];
    if (!(n > 0)) continue;
    const mid = (edges[b] + edges[b + 1]) / 2;
    if (!Number.isFinite(mid)) continue;
    total += n;
    sum += n * mid;
  }
  return total > 0 ? sum / total : null;
}

/** The last point of a series with a value (NaN / Inf count as values); null when none. */
export function lastPoint(s: Series | undefined): { step: number; value: number } | null {
  if (!s) return null;
  for (let i = s.values.length - 1; i >= 0; i--) {
    const v = s.values[i];
    if (v !== null && v !== undefined) return { step: s.steps[i], value: v };
  }
  return null;
}

/** The largest class share of the last row of a class-count histogram. */
export function topClassShare(h: Histogram | undefined): { step: number; cls: number; share: number } | null {
  if (!h || h.steps.length === 0) return null;
  const i = h.steps.length - 1;
  const row = h.counts[i];
  const total = row.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return null;
  let best = 0;
  for (let c = 1; c < row.length; c++) if (row[c] > row[best]) best = c;
  return { step: h.steps[i], cls: best, share: row[best] / total };
}

/**
 * Which non-finite ranges of a line chart get a text label: one label per
 * distinct start step, and none closer than `minGap` (a fraction of the x
 * span) to the previous label, so labels never pile on each other. Returns,
 * per series, a flag per range.
 */
export function nonFiniteLabelFlags(
  ranges: NonFiniteRange[][],
  span: number,
  minGap = 0.12,
): boolean[][] {
  const flat: { s: number; r: number; x: number }[] = [];
  ranges.forEach((rs, s) => rs.forEach((rg, r) => flat.push({ s, r, x: rg.from })));
  flat.sort((a, b) => a.x - b.x || a.s - b.s);
  const out = ranges.map((rs) => rs.map(() => false));
  const gap = Math.max(0, span) * minGap;
  let last = -Infinity;
  for (const f of flat) {
    if (f.x === last || (last !== -Infinity && f.x - last < gap)) continue;
    out[f.s][f.r] = true;
    last = f.x;
  }
  return out;
}

// ---------------------------------------------------------------- variables

/** "model/dense/kernel" -> "model/dense" (the layer a variable belongs to). */
export function layerOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i > 0 ? path.slice(0, i) : path;
}

/** Kernel-like variable: rank >= 2 when the shape is known, else by its name. */
export function isKernelLike(path: string, shape?: number[] | null): boolean {
  if (shape && shape.length > 0) return shape.length >= 2;
  const leaf = path.slice(path.lastIndexOf("/") + 1);
  return /kernel|weight|embedding|^w$/i.test(leaf);
}

/** "[16, 16] · 256 values" */
export function shapeText(shape: number[] | undefined | null): string {
  if (!shape) return "";
  const n = shape.reduce((a, b) => a * b, 1);
  return `[${shape.join(", ")}] · ${n.toLocaleString("en-US")} value${n === 1 ? "" : "s"}`;
}

/**
 * One log range for charts compared side by side: the union of their
 * positive [min, max] ranges in whole decades, unless one chart's outliers
 * would squash the others (the union spans more than `slack` decades beyond
 * the widest single range): then null, each chart keeps its own range.
 */
export function sharedLogRange(ranges: ([number, number] | null)[], slack = 2): [number, number] | null {
  const ok = ranges.filter((r): r is [number, number] => !!r && r[0] > 0 && r[1] >= r[0] && Number.isFinite(r[1]));
  if (ok.length === 0) return null;
  const dec = ok.map(([a, b]) => [Math.floor(Math.log10(a)), Math.max(Math.ceil(Math.log10(b)), Math.floor(Math.log10(a)) + 1)]);
  const lo = Math.min(...dec.map((d) => d[0]));
  const hi = Math.max(...dec.map((d) => d[1]));
  const widest = Math.max(...dec.map((d) => d[1] - d[0]));
  if (ok.length > 1 && hi - lo > widest + slack) return null;
  return [Math.pow(10, lo), Math.pow(10, hi)];
}

/** Positive finite [min, max] of some values (null when none). */
export function positiveRange(values: Iterable<number | null | undefined>): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v !== null && v !== undefined && Number.isFinite(v) && v > 0) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : null;
}

/**
 * `about` bins over [lo, hi] on round boundaries (steps of 1, 2 or 5 x 10^n),
 * so the bin labels read well; a zero-width range is widened first.
 */
export function niceEdges(lo: number, hi: number, about: number): number[] {
  const [a, b] = widenedRange(lo, hi);
  const raw = (b - a) / Math.max(1, about);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) ?? 10 * mag;
  const start = Math.floor(a / step) * step;
  const n = Math.max(1, Math.ceil((b - start) / step - 1e-9));
  const out: number[] = [];
  // rounding to the step's precision keeps labels like 0.30000000000000004 away
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 2);
  for (let i = 0; i <= n; i++) out.push(Number((start + i * step).toFixed(Math.min(20, digits))));
  return out;
}
