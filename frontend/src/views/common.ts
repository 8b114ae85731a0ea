// Building blocks shared by the dashboards: chart panels (with their data
// downloads), focus banner.

import type { App } from "../app";
import {
  heatmapOption,
  heatmapPoints,
  lineOption,
  mountChart,
  pointCount,
  type HeatmapSpec,
  type LineChartSpec,
} from "../charts";
import { clear, el } from "../dom";
import { humanize, stepRangeText } from "../format";
import type { ECharts } from "echarts/core";
import { api } from "../api";
import { normaliseManifest, type Manifest } from "../manifest";
import { companionRuns } from "../shape";
import { panelRows, saveFile, toCsv, toJson } from "../download";
import { rootCause } from "../triage";
import { evidenceView } from "./evidence";
import { nameSpan } from "../names";
import { ORANGE } from "../style";

export interface ChartPanel {
  panel: HTMLElement; // carries data-testid and data-points
  body: HTMLElement; // where the chart or the per-run charts go
  sub: HTMLElement;
  controls: HTMLElement;
}

/** The badge class of a finding's severity ("info" for anything unknown). */
export function badgeOf(severity: unknown): "error" | "warning" | "info" {
  return severity === "error" ? "error" : severity === "warning" ? "warning" : "info";
}

export function chartPanel(
  testid: string,
  title: string,
  subtitle: string,
  opts: { wide?: boolean } = {},
): ChartPanel {
  const sub = el("div", { class: "sub" }, subtitle);
  const controls = el("div", { class: "controls" });
  const body = el("div", { class: "chart-body" });
  const panel = el("div", { class: `chart-panel${opts.wide ? " wide" : ""}`, testid, data: { points: undefined } });
  const save = (ext: "csv" | "json") => {
    const rows = panelRows(panel);
    const text = ext === "csv" ? toCsv(rows) : toJson({ chart: testid, title, rows });
    saveFile(panel.ownerDocument, `${testid}.${ext}`, text, ext === "csv" ? "text/csv" : "application/json");
  };
  const dl = (ext: "csv" | "json") =>
    el(
      "button",
      { class: "dl", testid: `download-${ext}`, title: `Download this chart's data as ${ext.toUpperCase()}`, on: { click: () => save(ext) } },
      ext.toUpperCase(),
    );
  panel.append(el("h4", {}, title, el("span", { class: "dl-group" }, dl("csv"), dl("json"))), sub, controls, body);
  return { panel, body, sub, controls };
}

export function notApplicable(p: ChartPanel, text: string): void {
  clear(p.body);
  p.body.appendChild(el("div", { class: "na" }, text));
  p.panel.setAttribute("data-points", "0");
}

/** Draws a line chart into a panel (or a "not recorded" note when there is nothing). */
export function drawLines(p: ChartPanel, spec: LineChartSpec, naText: string, group?: string): ECharts | null {
  const n = pointCount(spec.series);
  clear(p.body);
  if (n === 0) {
    notApplicable(p, naText);
    return null;
  }
  const div = el("div", { class: "chart" });
  p.body.appendChild(div);
  return mountChart(div, lineOption(spec), n, p.panel, group);
}

export interface MultiItem {
  run: string;
  label: string;
  chartDiv: HTMLElement | null;
  chart: ECharts | null;
  points: number;
}

/** Lays out one cell per run side by side inside a panel. */
export function multiLayout(p: ChartPanel, labels: { run: string; label: string; color: string }[]): HTMLElement[] {
  clear(p.body);
  const grid = el("div", { class: "multi" });
  const cols = Math.min(labels.length, labels.length > 4 ? 3 : labels.length >= 2 ? 2 : 1);
  grid.style.gridTemplateColumns = `repeat(${Math.max(1, cols)}, minmax(0, 1fr))`;
  p.body.appendChild(grid);
  return labels.map((l) => {
    const cell = el(
      "div",
      { class: "multi-item", data: { run: l.run } },
      el("div", { class: "run-title" }, el("span", { class: "key-swatch", style: { background: l.color } }), nameSpan(l.label)),
    );
    grid.appendChild(cell);
    return cell;
  });
}

/** Draws a heatmap into a multi-layout cell; returns the points drawn. */
export function drawHeatmapCell(
  cell: HTMLElement,
  spec: HeatmapSpec | null,
  naText: string,
  size: boolean | "short" = false,
): { chart: ECharts | null; points: number } {
  const old = cell.querySelector(".chart, .na");
  if (old) old.remove();
  if (!spec || heatmapPoints(spec) === 0) {
    cell.appendChild(el("div", { class: "na" }, naText));
    cell.setAttribute("data-points", "0");
    return { chart: null, points: 0 };
  }
  const div = el("div", { class: `chart${size === "short" ? " short" : size ? " tall" : ""}` });
  cell.appendChild(div);
  const n = heatmapPoints(spec);
  const chart = mountChart(div, heatmapOption(spec), n, cell);
  return { chart, points: n };
}

export function setPanelPoints(p: ChartPanel, cells: HTMLElement[]): void {
  const total = cells.reduce((a, c) => a + Number(c.getAttribute("data-points") ?? 0), 0);
  p.panel.setAttribute("data-points", String(total));
}

/**
 * The focused finding above a dashboard: what was found, the evidence, and
 * what to do (a symptom's root cause and its fix). It stays at the top of the
 * pane while the charts scroll under it.
 */
export function focusBanner(app: App, dashboard: string): HTMLElement | null {
  const f = app.state.focus;
  if (!f) return null;
  const clearBtn = el("button", { class: "btn" }, "Clear focus");
  clearBtn.addEventListener("click", () => {
    app.state.focus = null;
    app.setTab(app.state.tab);
  });
  const back = el("button", { class: "btn", style: { marginLeft: "0" } }, "Back to overview");
  back.addEventListener("click", () => {
    app.state.focus = null;
    app.setTab("overview");
  });
  const cause = rootCause(app.state.runs, f.run, f.finding);
  const fix = cause ? cause.finding.suggestion : f.finding.suggestion;
  const evidence = f.finding.evidence && typeof f.finding.evidence === "object" ? evidenceView(f.finding.evidence) : null;
  return el(
    "div",
    { class: "focus-banner", testid: "focus-banner", data: { dashboard, run: f.run, kind: f.kind } },
    el(
      "div",
      { class: "fb-head" },
      el("span", { class: `badge badge-${badgeOf(f.finding.severity)}` }, String(f.finding.severity)),
      el("b", {}, humanize(f.kind)),
      " in run ",
      el("span", { class: "mono" }, f.run),
      f.layer ? " · layer " : null,
      f.layer ? el("span", { class: "mono" }, f.layer) : null,
      f.first !== null || f.last !== null ? ` · ${stepRangeText(f.first, f.last)}` : null,
      clearBtn,
      back,
    ),
    el("div", { class: "fb-msg", testid: "focus-message" }, String(f.finding.message ?? "")),
    cause
      ? el(
          "div",
          { class: "fb-cause", testid: "focus-cause", data: { kind: String(cause.finding.kind) } },
          "Root cause: ",
          el("b", {}, humanize(String(cause.finding.kind))),
          cause.finding.layer ? el("span", { class: "mono" }, ` ${cause.finding.layer}`) : null,
          ` · ${cause.finding.message}`,
        )
      : null,
    fix ? el("div", { class: "card-suggest", testid: "focus-suggestion" }, el("b", {}, "What to do: "), String(fix)) : null,
    evidence ? el("details", { class: "fb-evidence", testid: "focus-evidence" }, el("summary", {}, "Evidence"), evidence) : null,
  );
}

/**
 * Which chart of a dashboard best shows a finding kind. `regression`: the
 * focused run's predictions are regression outputs (no probabilities).
 */
export function chartForKind(kind: string, dashboard: "collapse" | "gradients", regression = false): string {
  const k = kind.toLowerCase();
  if (dashboard === "collapse") {
    if (k === "output_activation_mismatch") return regression ? "chart-regression-spread" : "chart-zero-logits";
    if (regression && /collapse|nonfinite|nan|inf|constant|spread|std/.test(k)) return "chart-regression-spread";
    if (/zero_logit|zero-logit|relu|logit/.test(k)) return "chart-zero-logits";
    if (/tie/.test(k)) return "chart-ties";
    if (/accura/.test(k)) return "chart-accuracy";
    if (/class|constant|single|majority|predicted/.test(k)) return "chart-class-shares";
    if (/spread|std|regress|variance/.test(k)) return "chart-regression-spread";
    if (/top1|top_1|confiden|saturat|overconf/.test(k)) return "chart-top1-heatmap";
    return "chart-entropy";
  }
  if (/update/.test(k)) return "chart-update-ratio";
  if (/zero|dead/.test(k)) return "chart-zero-grad";
  if (/nonfinite|nan|inf/.test(k)) return "chart-grad-heatmap";
  if (/first_last|ratio/.test(k)) return "chart-first-last";
  return "chart-grad-heatmap";
}

export function scrollToTestid(root: HTMLElement, testid: string): void {
  const target = root.querySelector(`[data-testid="${testid}"]`) as HTMLElement | null;
  if (!target) return;
  target.setAttribute("data-focused", "true");
  target.style.boxShadow = `0 0 0 2px ${ORANGE}`;
  // scroll the content pane (not the iframe) so the chart is at the top
  const pane = root.closest(".hp-content") as HTMLElement | null;
  if (pane) {
    const top = target.offsetTop - pane.offsetTop;
    // the focus banner stays at the top of the pane: the chart goes right under it
    const banner = (root.querySelector('[data-testid="focus-banner"]') as HTMLElement | null)?.offsetHeight ?? 0;
    // a chart already in view stays put (the focus banner and the summary stay visible)
    if (top + Math.min(target.offsetHeight, 300) > pane.clientHeight) pane.scrollTop = Math.max(0, top - banner - 8);
  } else {
    target.scrollIntoView({ block: "start" });
  }
}

/** A wrapping key of run colours (instead of an ECharts legend that pages). */
export function runKey(items: { label: string; color: string }[], extra?: HTMLElement | null): HTMLElement {
  return el(
    "div",
    { class: "run-key" },
    ...items.map((it) =>
      el(
        "span",
        { class: "key-item" },
        el("span", { class: "key-swatch", style: { background: it.color } }),
        nameSpan(it.label),
      ),
    ),
    extra ?? null,
  );
}

/** "— solid  - - dashed" line-style key. */
export function styleKey(solid: string, dashed: string): HTMLElement {
  return el(
    "span",
    { class: "key-styles" },
    el("span", { class: "key-line" }),
    solid,
    el("span", { class: "key-line dashed" }),
    dashed,
  );
}

export interface RunManifest {
  manifest: Manifest | null;
  /** the run the manifest was read from (a validation run borrows its train run's) */
  source: string | null;
  error: string | null;
}

/**
 * The manifests of `runs`. A run without one (a validation run) borrows the
 * manifest of its companion train run. Failures are returned, never thrown.
 */
export async function loadManifests(app: App, runs: string[]): Promise<Map<string, RunManifest>> {
  const all = app.state.runs;
  const sourceOf = (run: string): string | null => {
    const info = all.find((r) => r.run === run);
    if (info?.has_manifest) return run;
    const names = all.map((r) => r.run);
    for (const c of companionRuns(run, names)) {
      if (all.find((r) => r.run === c)?.has_manifest) return c;
    }
    return null;
  };
  const out = new Map<string, RunManifest>();
  await Promise.all(
    runs.map(async (run) => {
      const source = sourceOf(run);
      if (source === null) {
        out.set(run, { manifest: null, source: null, error: null });
        return;
      }
      try {
        const resp = await api.manifest(source);
        out.set(run, { manifest: normaliseManifest(resp?.manifest), source, error: null });
      } catch (e) {
        out.set(run, { manifest: null, source, error: e instanceof Error ? e.message : String(e) });
      }
    }),
  );
  return out;
}
