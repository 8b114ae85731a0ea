// Decoding of the route JSON: non-finite floats arrive as "NaN", "Infinity",
// "-Infinity" strings. Anything unexpected becomes null (missing), never throws.

import type { Histogram, RawHistogram, RawNumber, RawSeries, Series } from "./types";

/** Decodes one number; null for missing or undecodable values. */
export function decodeNumber(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    switch (v) {
      case "NaN":
        return NaN;
      case "Infinity":
      case "+Infinity":
      case "inf":
        return Infinity;
      case "-Infinity":
      case "-inf":
        return -Infinity;
    }
    const t = v.trim();
    if (t !== "" && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) return Number(t);
    return null;
  }
  return null;
}

/** Decodes a step (integer); missing or non-finite steps become null. */
export function decodeStep(v: unknown): number | null {
  const n = decodeNumber(v);
  return n !== null && Number.isFinite(n) ? n : null;
}

export function decodeArray(a: unknown): (number | null)[] {
  return Array.isArray(a) ? a.map(decodeNumber) : [];
}

/**
 * Decodes a {steps, values} series. Points whose step is unusable are
 * dropped; the result is sorted by step.
 */
export function decodeSeries(s: RawSeries | null | undefined): Series {
  if (!s || !Array.isArray(s.steps)) return { steps: [], values: [] };
  const values = Array.isArray(s.values) ? s.values : [];
  const pts: [number, number | null][] = [];
  for (let i = 0; i < s.steps.length; i++) {
    const st = decodeStep(s.steps[i]);
    if (st === null) continue;
    pts.push([st, decodeNumber(values[i])]);
  }
  if (!isSorted(pts.map((p) => p[0]))) pts.sort((a, b) => a[0] - b[0]);
  return { steps: pts.map((p) => p[0]), values: pts.map((p) => p[1]) };
}

function isSorted(a: number[]): boolean {
  for (let i = 1; i < a.length; i++) if (a[i] < a[i - 1]) return false;
  return true;
}

/**
 * Decodes a histogram series. Count cells that are missing or non-finite
 * become 0 (counts are never legitimately non-finite); rows are padded or
 * truncated to the number of bins. Optional `step_edges` (per-record edges)
 * are decoded into `stepEdges`, kept aligned with the (sorted) steps.
 */
export function decodeHistogram(h: RawHistogram | null | undefined): Histogram {
  if (!h || !Array.isArray(h.edges) || !Array.isArray(h.steps)) {
    return { edges: [], steps: [], counts: [] };
  }
  const decodeEdges = (a: unknown): number[] =>
    (Array.isArray(a) ? a : []).map(decodeNumber).map((e) => (e === null ? NaN : e));
  const edges = decodeEdges(h.edges);
  const bins = Math.max(0, edges.length - 1);
  const rawStepEdges = Array.isArray(h.step_edges) ? h.step_edges : null;
  const rows: { step: number; counts: number[]; edges: number[] | null }[] = [];
  const counts = Array.isArray(h.counts) ? h.counts : [];
  for (let i = 0; i < h.steps.length; i++) {
    const st = decodeStep(h.steps[i]);
    if (st === null) continue;
    const raw = Array.isArray(counts[i]) ? counts[i] : [];
    const row: number[] = [];
    for (let b = 0; b < bins; b++) {
      const c = decodeNumber(raw[b] as RawNumber);
      row.push(c !== null && Number.isFinite(c) && c > 0 ? c : 0);
    }
    let own: number[] | null = null;
    if (rawStepEdges) {
      // a row of the wrong length is unusable: fall back to the shared edges
      const e = decodeEdges(rawStepEdges[i]);
      own = e.length === bins + 1 ? e : edges.slice();
    }
    rows.push({ step: st, counts: row, edges: own });
  }
  if (!isSorted(rows.map((r) => r.step))) rows.sort((a, b) => a.step - b.step);
  const out: Histogram = { edges, steps: rows.map((r) => r.step), counts: rows.map((r) => r.counts) };
  if (rawStepEdges) out.stepEdges = rows.map((r) => r.edges as number[]);
  return out;
}

/** Decodes the gradients route's `shapes` (path -> shape); bad entries are dropped. */
export function decodeShapes(s: unknown): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  if (!s || typeof s !== "object" || Array.isArray(s)) return out;
  for (const [k, v] of Object.entries(s as Record<string, unknown>)) {
    if (!Array.isArray(v)) continue;
    const dims = v.map(decodeStep);
    if (dims.every((d): d is number => d !== null && d >= 0)) out[k] = dims;
  }
  return out;
}

/** Decodes a [variable][step] matrix (gradients route). */
export function decodeMatrix(m: unknown, rows: number, cols: number): (number | null)[][] {
  const out: (number | null)[][] = [];
  const src = Array.isArray(m) ? m : [];
  for (let r = 0; r < rows; r++) {
    const row = Array.isArray(src[r]) ? (src[r] as unknown[]) : [];
    const o: (number | null)[] = [];
    for (let c = 0; c < cols; c++) o.push(decodeNumber(row[c]));
    out.push(o);
  }
  return out;
}
