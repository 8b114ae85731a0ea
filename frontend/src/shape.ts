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

export type Dashboard = "collapse" | "gradients";

const GRADIENT_KIND = /grad|vanish|explod|update|weight|dead|first_last|saturat|variable/i;

const GRADIENT_EVIDENCE = ["variable", "variables_affected", "first_nonfinite_step", "first_last_ratio"];

/**
 * Which dashboard a finding opens: gradient kinds, and findings (e.g.
 * "nonfinite") whose layer is one of the run's gradient variables or whose
 * evidence is about variables, open the gradients dashboard.
 */
export function dashboardFor(
  kind: string,
  evidence?: Record<string, unknown> | null,
  layer?: string | null,
  variables: string[] = [],
): Dashboard {
  if (GRADIENT_KIND.test(kind)) return "gradients";
  if (evidence && typeof evidence === "object" && GRADIENT_EVIDENCE.some((k) => k in evidence)) return "gradients";
  if (layer && variables.includes(layer)) return "gradients";
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

/** Sorts findings: errors first, then by first step. */
export function sortFindings<T extends { severity: string; first_step: unknown }>(fs: T[]): T[] {
  const rank = (s: string) => (s === "error" ? 0 : s === "warning" ? 1 : 2);
  return [...fs].sort((a, b) => {
    const r = rank(a.severity) - rank(b.severity);
    if (r) return r;
    const sa = typeof a.first_step === "number" ? a.first_step : Infinity;
    const sb = typeof b.first_step === "number" ? b.first_step : Infinity;
    return sa - sb;
  });
}
