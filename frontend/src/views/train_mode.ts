// Train-mode dashboard: the layers that behave differently in training
// (Dropout family, BatchNormalization, any layer whose call takes
// `training`), what each ran with while the model trained: the training flag
// its call received, a Dropout's observed zero fraction against the one
// training would give (z_in + (1 - z_in) * rate, with its standard error),
// how far BatchNormalization's moving statistics moved between records. The
// steps of the run's train-mode findings are shaded.

import { api } from "../api";
import type { App } from "../app";
import { errorText } from "../app";
import type { LineSpec } from "../charts";
import { decodeNumber, decodeSeries } from "../decode";
import { el, emptyState, errorState, loadingState } from "../dom";
import { formatPercent, formatShort } from "../format";
import { lastPoint, lineData, stepExtent, TRAIN_MODE_KINDS, zoomWindow } from "../shape";
import { runColor } from "../colors";
import { nameSpan } from "../names";
import { selectedRuns } from "../state";
import { GREY } from "../style";
import type { Finding, Series, TrainModeLayer } from "../types";
import { chartPanel, drawLines, focusBanner, runKey, scrollToTestid, styleKey } from "./common";

export interface TrainModeRec {
  run: string;
  name: string;
  label: string;
  color: string;
  layer: TrainModeLayer;
  series: Record<string, Series>;
}

/** The layer paths a train-mode finding is about (its layer and evidence.layers). */
export function findingLayers(f: Finding): string[] {
  const out = new Set<string>();
  if (typeof f.layer === "string" && f.layer) out.add(f.layer);
  const ev = f.evidence && typeof f.evidence === "object" ? f.evidence : {};
  const layers = (ev as Record<string, unknown>).layers;
  if (Array.isArray(layers)) {
    for (const p of layers) if (typeof p === "string") out.add(p);
  } else if (layers && typeof layers === "object") {
    for (const p of Object.keys(layers)) out.add(p);
  }
  return [...out];
}

/** The step range to shade on a layer's charts: the focused finding's, else the first train-mode finding about it. */
export function markedRange(
  findings: { run: string; f: Finding }[],
  path: string,
  focus: { run: string; kind: string; first: number | null; last: number | null; finding: Finding } | null,
): [number, number] | null {
  const range = (f: Finding): [number, number] | null => {
    const a = decodeNumber(f.first_step);
    const b = decodeNumber(f.last_step);
    return a === null ? null : [a, b ?? a];
  };
  if (focus && TRAIN_MODE_KINDS.has(focus.kind) && findingLayers(focus.finding).includes(path)) return range(focus.finding);
  for (const { f } of findings) {
    if (TRAIN_MODE_KINDS.has(String(f.kind)) && f.severity !== "info" && findingLayers(f).includes(path)) return range(f);
  }
  return null;
}

function flagText(s: Series | undefined): string {
  const p = lastPoint(s);
  return p === null ? "–" : p.value >= 0.5 ? "True" : "False";
}

export async function renderTrainMode(app: App, root: HTMLElement, isCurrent: () => boolean): Promise<void> {
  const { state } = app;
  const sel = selectedRuns(state);
  if (sel.length === 0) {
    root.appendChild(emptyState("No run selected", "Select one or more runs on the left."));
    return;
  }
  const runs = sel.filter((r) => (r.train_mode ?? []).length > 0);
  if (runs.length === 0) {
    const banner = focusBanner(app, "train_mode");
    if (banner) root.appendChild(banner);
    root.appendChild(
      emptyState(
        "The selected runs have no train-mode records",
        "HealthCallback records what Dropout and BatchNormalization layers run with in the train step (model.fit); " +
          "in a custom loop, wrap the forward pass in `with probe:` (tb_plugin.summary.train_mode_probe(model)) and call " +
          "tb_plugin.summary.train_mode(probe). Select a train run, or a run whose model has such layers.",
      ),
    );
    return;
  }
  const jobs = runs.flatMap((r) =>
    (r.train_mode ?? []).map((t) => ({ run: r.run, name: t.name, label: (r.train_mode ?? []).length > 1 ? `${r.run} · ${t.name}` : r.run })),
  );
  const loading = loadingState(`Loading the train-mode records of ${jobs.length} run${jobs.length > 1 ? "s" : ""}…`);
  root.appendChild(loading);
  const results = await Promise.allSettled(jobs.map((j) => api.trainMode(j.run, j.name, state.width)));
  if (!isCurrent()) return;
  loading.remove();

  const recs: TrainModeRec[] = [];
  results.forEach((res, i) => {
    const j = jobs[i];
    if (res.status === "rejected") {
      root.appendChild(errorState(`${j.label}: ${errorText(res.reason)}`));
      return;
    }
    for (const layer of Array.isArray(res.value?.layers) ? res.value.layers : []) {
      if (!layer || typeof layer.path !== "string") continue;
      const series: Record<string, Series> = {};
      for (const [k, v] of Object.entries(layer.series ?? {})) series[k] = decodeSeries(v);
      recs.push({ run: j.run, name: j.name, label: j.label, color: runColor(state, j.run), layer, series });
    }
  });
  if (recs.length === 0) return;

  const banner = focusBanner(app, "train_mode");
  if (banner) root.appendChild(banner);
  const findings = runs.flatMap((r) => r.findings.map((f) => ({ run: r.run, f })));
  root.appendChild(summaryTable(recs, findings));

  const focus = state.focus && recs.some((r) => r.run === state.focus?.run) ? state.focus : null;
  const extent = stepExtent(recs.flatMap((r) => Object.values(r.series).map((s) => s.steps)));
  const zoom = focus && focus.first !== null && extent ? zoomWindow(focus.first, focus.last ?? focus.first, extent) : null;
  const labels = [...new Map(recs.map((r) => [r.run, { label: r.label, color: r.color }])).values()];
  root.appendChild(runKey(labels, styleKey("observed", "expected in training")));

  const grid = el("div", { class: "grid2" });
  root.appendChild(grid);
  // The training flag every layer received (1 = training=True).
  const flags = chartPanel(
    "chart-train-flags",
    "Training flag received",
    "1: the layer's call got training=True in the train step; 0: False/None (inference mode). Dashed: the model's own flag.",
  );
  grid.appendChild(flags.panel);
  const flagSeries: LineSpec[] = [];
  const multi = labels.length > 1;
  for (const r of recs.filter((x) => x.layer.kind !== "other")) {
    const name = multi ? `${r.run} · ${r.layer.path}` : r.layer.path;
    if (r.series.training) flagSeries.push({ name, color: r.color, data: lineData(r.series.training), step: true });
  }
  for (const r of labels) {
    const first = recs.find((x) => x.label === r.label && x.series.root_training);
    if (first) flagSeries.push({ name: `${r.label} · model`, color: r.color, data: lineData(first.series.root_training), step: true, dashed: true });
  }
  const focusRange = focus && focus.first !== null ? ([focus.first, focus.last ?? focus.first] as [number, number]) : null;
  drawLines(flags, { series: flagSeries, yMin: -0.05, yMax: 1.05, zoom, markRange: focus && TRAIN_MODE_KINDS.has(focus.kind) ? focusRange : null, legend: flagSeries.length <= 12 }, "No training flag recorded.", "train_mode");

  // One panel per layer (runs overlaid), Dropout family and BatchNormalization first.
  const paths = [...new Set(recs.filter((r) => r.layer.kind !== "other").map((r) => r.layer.path))];
  let focusTestid: string | null = null;
  paths.forEach((path, i) => {
    const of = recs.filter((r) => r.layer.path === path);
    const kind = of[0].layer.kind;
    const testid = `chart-tm-${i}`;
    const range = markedRange(findings, path, focus);
    if (focus && focusTestid === null && findingLayers(focus.finding).includes(path)) focusTestid = testid;
    const common = { zoom, markRange: range, markStep: focus && range ? focus.first : null };
    const cls = of[0].layer.class ?? kind;
    const rate = decodeNumber(of[0].layer.rate ?? null);
    if (kind === "dropout") {
      const p = chartPanel(testid, `${path} (${cls}, rate ${formatShort(rate)})`,
        "Share of its nonzero inputs the layer dropped: observed (solid) against its rate, what training drops (dashed; band: ±3 standard errors). A solid line at 0: it never dropped.");
      p.panel.setAttribute("data-layer", path);
      grid.appendChild(p.panel);
      const series: LineSpec[] = [];
      for (const r of of) {
        const lab = multi ? r.label : "";
        if (r.series.dropped_fraction) series.push({ name: `${lab}${lab ? " · " : ""}dropped`, color: r.color, data: lineData(r.series.dropped_fraction) });
        const obs = r.series.dropped_fraction;
        const exp: Series | undefined = obs && rate !== null ? { steps: obs.steps, values: obs.values.map(() => rate) } : undefined;
        if (exp) {
          series.push({ name: `${lab}${lab ? " · " : ""}rate (dropped in training)`, color: r.color, data: lineData(exp), dashed: true });
          const se = r.series.dropped_standard_error;
          if (se) {
            const band = (sign: number): Series => ({
              steps: exp.steps,
              values: exp.values.map((v, k) => (v === null || se.values[k] === null ? null : v + sign * 3 * (se.values[k] as number))),
            });
            series.push({ name: `${lab}${lab ? " · " : ""}-3 SE`, color: GREY, data: lineData(band(-1)), dashed: true, width: 0.8 });
            series.push({ name: `${lab}${lab ? " · " : ""}+3 SE`, color: GREY, data: lineData(band(1)), dashed: true, width: 0.8 });
          }
        }
      }
      drawLines(p, { series, yPercent: true, yMin: 0, legend: false, ...common }, "No zero fractions recorded (the layer's tensors were not readable in the step).", "train_mode");
    } else if (kind === "noise") {
      const p = chartPanel(testid, `${path} (${cls}, ${formatShort(rate)})`, "Share of its inputs the layer changed: ~all of them in training, 0 in inference.");
      p.panel.setAttribute("data-layer", path);
      grid.appendChild(p.panel);
      const series = of.filter((r) => r.series.changed_fraction).map((r) => ({ name: r.label, color: r.color, data: lineData(r.series.changed_fraction) }));
      drawLines(p, { series, yPercent: true, yMin: 0, yMax: 1, legend: false, ...common }, "Not recorded.", "train_mode");
    } else if (kind === "batchnorm") {
      const frozen = of.some((r) => r.layer.trainable === false);
      const p = chartPanel(
        testid,
        `${path} (${cls}${frozen ? ", frozen" : ""})`,
        "How far its moving mean (solid) and variance (dashed) moved since the previous record (max |change|): 0 means inference mode or trainable=False.",
      );
      p.panel.setAttribute("data-layer", path);
      grid.appendChild(p.panel);
      const series: LineSpec[] = [];
      for (const r of of) {
        const lab = multi ? `${r.label} · ` : "";
        if (r.series.mean_change) series.push({ name: `${lab}moving mean`, color: r.color, data: lineData(r.series.mean_change) });
        if (r.series.variance_change) series.push({ name: `${lab}moving variance`, color: r.color, data: lineData(r.series.variance_change), dashed: true });
      }
      drawLines(p, { series, yMin: 0, legend: false, ...common }, "Not recorded.", "train_mode");
    }
  });
  if (focusTestid) scrollToTestid(root, focusTestid);
}

function summaryTable(recs: TrainModeRec[], findings: { run: string; f: Finding }[]): HTMLElement {
  const flagged = new Set<string>();
  for (const { run, f } of findings) {
    if (!TRAIN_MODE_KINDS.has(String(f.kind)) || f.severity === "info") continue;
    for (const p of findingLayers(f)) flagged.add(`${run}\u0000${p}`);
  }
  const table = el("table", { class: "summary-table" });
  table.appendChild(
    el(
      "tr",
      {},
      ...[
        ["Run", ""],
        ["Layer", "Path of the layer in the model"],
        ["Class", ""],
        ["Rate", "Dropout rate (GaussianNoise: stddev)"],
        ["training received", "The flag its call received in the last recorded train step"],
        ["Model's flag", "The flag the model itself ran with"],
        ["Called by", "The layer whose call called it"],
        ["Zero fraction: observed / expected", "Dropout: share of zero outputs, against what training would give"],
        ["Moving stats moved", "BatchNormalization: max |change| of the moving mean since the previous record"],
      ].map(([t, h]) => el("th", { title: h || undefined }, t)),
    ),
  );
  for (const r of recs) {
    if (r.layer.kind === "other") continue;
    const bad = flagged.has(`${r.run}\u0000${r.layer.path}`);
    const obs = lastPoint(r.series.observed_zero_fraction);
    const exp = lastPoint(r.series.expected_zero_fraction);
    const moved = lastPoint(r.series.mean_change);
    const flag = flagText(r.series.training);
    const trainable = r.layer.trainable === false ? " (trainable=False)" : "";
    table.appendChild(
      el(
        "tr",
        { data: { run: r.run, layer: r.layer.path } },
        el("td", { class: "run-cell" }, el("span", { class: "key-swatch", style: { background: r.color } }), nameSpan(r.label)),
        el("td", { class: `mono${bad ? " bad" : ""}` }, r.layer.path),
        el("td", {}, `${r.layer.class ?? ""}${trainable}`),
        el("td", {}, r.layer.rate === undefined || r.layer.rate === null ? "–" : formatShort(decodeNumber(r.layer.rate))),
        el("td", { class: flag === "False" ? "bad" : undefined, title: r.layer.flag ? `received training=${r.layer.flag}` : undefined }, flag === "False" && r.layer.flag ? r.layer.flag : flag),
        el("td", { class: flagText(r.series.root_training) === "False" ? "bad" : undefined }, flagText(r.series.root_training)),
        el("td", { class: "mono" }, r.layer.caller ?? "–"),
        el(
          "td",
          { class: bad && obs && exp && exp.value - obs.value > 0.01 ? "bad" : undefined },
          obs && exp ? `${formatPercent(obs.value)} / ${formatPercent(exp.value)}` : "–",
        ),
        el("td", { class: bad && moved && moved.value === 0 ? "bad" : undefined }, moved ? formatShort(moved.value) : "–"),
      ),
    );
  }
  return el(
    "div",
    { class: "panel summary", testid: "train-mode-summary" },
    el(
      "h3",
      {},
      "Layers that behave differently in training",
      el("span", { class: "muted h-note" }, "last recorded step · red: the layers behind this run's train-mode findings"),
    ),
    el("div", { class: "summary-scroll" }, table),
  );
}
