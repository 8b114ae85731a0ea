// Downloads built in the browser from data already fetched: the findings of
// every run, and the data of a chart panel (read back from its ECharts
// instances, so every dashboard's charts are covered the same way).

import { getInstanceByDom } from "echarts/core";
import type { RunInfo } from "./types";

export type Row = Record<string, unknown>;

/** A CSV cell: numbers as JS writes them (NaN, Infinity too), objects as JSON, quoted when needed. */
function cell(v: unknown): string {
  const text =
    v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV of `rows`; the columns are every key, in order of first appearance. */
export function toCsv(rows: Row[]): string {
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  return [cols, ...rows.map((r) => cols.map((c) => r[c]))].map((line) => line.map(cell).join(",")).join("\n") + "\n";
}

/** JSON that keeps non-finite numbers as the strings "NaN", "Infinity", "-Infinity" (as the routes do). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v), 2) + "\n";
}

/** One row per finding of every run. */
export function findingRows(runs: RunInfo[]): Row[] {
  return runs.flatMap((r) =>
    r.findings.map((f) => ({
      run: r.run,
      status: r.status,
      severity: f.severity,
      kind: f.kind,
      layer: f.layer ?? null,
      first_step: f.first_step,
      last_step: f.last_step,
      caused_by: f.caused_by ?? null,
      message: f.message,
      suggestion: f.suggestion,
      evidence: f.evidence,
    })),
  );
}

/** The findings document: every run with its status and findings, as the runs route gives them. */
export function findingsDocument(runs: RunInfo[]): unknown {
  return { runs: runs.map((r) => ({ run: r.run, status: r.status, error: r.error ?? null, findings: r.findings })) };
}

type SeriesOption = { type?: string; name?: string; silent?: boolean; encode?: { x?: number; y?: number }; data?: unknown[] };
type AxisOption = { data?: unknown[] };

const valueOf = (d: unknown): unknown => (d && typeof d === "object" && !Array.isArray(d) ? (d as { value?: unknown }).value : d);

/**
 * The rows of one ECharts option: line points (step, value: the recorded
 * value, NaN kept), heatmap cells (step, bin, value as drawn) and bars
 * (category, value as drawn). Reference lines are left out.
 */
export function optionRows(option: Record<string, unknown>, run: string | null): Row[] {
  // getOption() gives axes as arrays, a built option may give one object
  const axis = (k: string) => {
    const a = option[k] as AxisOption | AxisOption[] | undefined;
    return (Array.isArray(a) ? a[0] : a)?.data ?? [];
  };
  const xs = axis("xAxis");
  const ys = axis("yAxis");
  const rows: Row[] = [];
  const base = (name: unknown) => (run === null ? { series: name ?? "" } : { run, series: name ?? "" });
  for (const s of (option.series as SeriesOption[] | undefined) ?? []) {
    if (s.silent) continue;
    (s.data ?? []).forEach((raw, i) => {
      const d = valueOf(raw);
      if (s.type === "line" && Array.isArray(d)) {
        const xi = s.encode?.x ?? 0;
        const yi = s.encode?.y ?? 1;
        const value = d.length > 2 && d[2] !== undefined ? d[2] : d[yi];
        rows.push({ ...base(s.name), step: d[xi], value });
      } else if (s.type === "heatmap" && Array.isArray(d)) {
        rows.push({ ...base(s.name), step: xs[Number(d[0])] ?? d[0], bin: ys[Number(d[1])] ?? d[1], value: d[2] });
      } else if (s.type === "bar") {
        rows.push({ ...base(s.name), category: xs[i] ?? i, value: d });
      }
    });
  }
  return rows;
}

/** The data of every chart drawn inside `panel` (one per run in side-by-side layouts). */
export function panelRows(panel: HTMLElement): Row[] {
  return Array.from(panel.querySelectorAll<HTMLElement>(".chart")).flatMap((div) => {
    const chart = getInstanceByDom(div);
    if (!chart) return [];
    const run = div.closest<HTMLElement>("[data-run]")?.getAttribute("data-run") ?? null;
    return optionRows(chart.getOption() as Record<string, unknown>, run);
  });
}

/** Saves `text` as a file named `name` (through a temporary link). */
export function saveFile(doc: Document, name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = doc.createElement("a");
  a.href = url;
  a.download = name;
  a.style.display = "none";
  doc.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
