// ECharts setup (only the parts used, via echarts/core) and option builders.
// Tooltip formatters return HTML: every name in them goes through escapeHtml.

import * as echarts from "echarts/core";
import { BarChart, HeatmapChart, LineChart } from "echarts/charts";
import {
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  MarkAreaComponent,
  MarkLineComponent,
  TooltipComponent,
  VisualMapContinuousComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import type { EChartsCoreOption, ECharts } from "echarts/core";
import { escapeHtml, formatExact, formatShort, valueHtml } from "./format";
import { middleEllipsis } from "./names";
import { nonFiniteLabelFlags, type LineData } from "./shape";
import { GREY, ORANGE, RED } from "./style";
import { isDark, onThemeChange } from "./theme";

echarts.use([
  LineChart,
  BarChart,
  HeatmapChart,
  GridComponent,
  TooltipComponent,
  LegendComponent,
  DataZoomComponent,
  VisualMapContinuousComponent,
  MarkLineComponent,
  MarkAreaComponent,
  CanvasRenderer,
]);

export type Option = EChartsCoreOption;

/** Longest legend entry, in characters. */
const LEGEND_CHARS = 48;

// ---------------------------------------------------------------- registry

const live = new Set<ECharts>();
let resizeObserver: ResizeObserver | null = null;

function observe(elem: HTMLElement, chart: ECharts): void {
  if (typeof ResizeObserver === "undefined") return;
  if (!resizeObserver) {
    resizeObserver = new ResizeObserver((entries) => {
      for (const e of entries) {
        const c = echarts.getInstanceByDom(e.target as HTMLElement);
        if (c && !c.isDisposed()) c.resize();
      }
    });
  }
  resizeObserver.observe(elem);
  void chart;
}

/** Disposes every chart (before a view is rebuilt). */
export function disposeAll(): void {
  for (const c of live) {
    if (!c.isDisposed()) {
      const dom = c.getDom();
      resizeObserver?.unobserve(dom);
      c.dispose();
    }
  }
  live.clear();
}

/**
 * Draws `option` into `elem` and records the number of drawn points and the
 * y axis' type on `pointsHost` (the element with the chart's data-testid).
 */
export function mountChart(
  elem: HTMLElement,
  option: Option,
  points: number,
  pointsHost: HTMLElement = elem,
  group?: string,
): ECharts {
  const existing = echarts.getInstanceByDom(elem);
  if (existing) {
    live.delete(existing);
    existing.dispose();
  }
  const chart = echarts.init(elem, undefined, { renderer: "canvas" });
  options.set(chart, []);
  updateChart(chart, option);
  if (group) {
    chart.group = group;
    echarts.connect(group);
  }
  live.add(chart);
  observe(elem, chart);
  pointsHost.setAttribute("data-points", String(points));
  const yAxis = (option as { yAxis?: { type?: string } }).yAxis;
  if (yAxis?.type) pointsHost.setAttribute("data-y-axis", yAxis.type);
  return chart;
}

// ---------------------------------------------------------------- theme

/** The options builders' light colours and what the dark theme draws instead. */
const DARK_COLORS: Record<string, string> = {
  [GREY]: "#b0b0b0",
  "#212121": "#e8e8e8",
  "#eee": "#4a4a4a",
  "#ddd": "#555",
  "#e0e0e0": "#555",
  "#ccc": "#666",
  "#bbb": "#777",
  "#1565c0": "#64b5f6",
  "rgba(255,255,255,0.97)": "rgba(58,58,58,0.97)",
};

/** `option` in the current theme: in the dark one, its light colours swapped. */
export function themed<T>(option: T, dark = isDark()): T {
  if (!dark) return option;
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") return DARK_COLORS[v] ?? v;
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(option) as T;
}

/** Every option given to a live chart, in order (re-applied when the theme changes). */
const options = new WeakMap<ECharts, Option[]>();

/** Merges `option` into `chart`, in the current theme. */
export function updateChart(chart: ECharts, option: Option): void {
  options.get(chart)?.push(option);
  chart.setOption(themed(option));
}

onThemeChange((dark) => {
  for (const c of live) {
    if (!c.isDisposed()) for (const o of options.get(c) ?? []) c.setOption(themed(o, dark));
  }
});

// ---------------------------------------------------------------- common pieces

const AXIS_LABEL = { color: GREY, fontSize: 11 };
/** Value axes' labels: of two that would overlap (1e30 beside a 1e32 maximum) one goes. */
const VALUE_LABEL = { ...AXIS_LABEL, hideOverlap: true };
const SPLIT_LINE = { lineStyle: { color: "#eee" } };

function baseTooltip(): Record<string, unknown> {
  return {
    confine: true,
    backgroundColor: "rgba(255,255,255,0.97)",
    borderColor: "#ddd",
    textStyle: { color: "#212121", fontSize: 12 },
    extraCssText: "box-shadow: 0 2px 6px rgba(0,0,0,.15); max-width: 420px; white-space: normal;",
  };
}

function marker(color: string, dashed = false): string {
  // colour comes from our own palette, never from data
  const safe = /^#[0-9a-fA-F]{3,8}$|^rgba?\([\d.,\s]+\)$/.test(color) ? color : "#999";
  return dashed
    ? `<span style="display:inline-block;width:10px;border-top:2px dashed ${safe};margin:0 6px 3px 0"></span>`
    : `<span style="display:inline-block;width:10px;height:10px;border-radius:5px;background:${safe};margin-right:6px"></span>`;
}

export function zoomComponents(
  window?: [number, number] | null,
  mode: "value" | "index" = "value",
): Record<string, unknown>[] {
  const w =
    window && mode === "value"
      ? { startValue: window[0], endValue: window[1] }
      : window
        ? { startValue: window[0], endValue: window[1] }
        : {};
  return [
    { type: "inside", xAxisIndex: 0, zoomOnMouseWheel: "shift", moveOnMouseWheel: false, ...w },
    {
      type: "slider",
      xAxisIndex: 0,
      height: 14,
      bottom: 4,
      showDetail: false,
      borderColor: "#e0e0e0",
      fillerColor: "rgba(245,124,0,0.15)",
      handleStyle: { color: ORANGE, borderColor: ORANGE },
      moveHandleSize: 4,
      dataBackground: { lineStyle: { color: "#ccc" }, areaStyle: { color: "#eee" } },
      ...w,
    },
  ];
}

// ---------------------------------------------------------------- line charts

export interface LineSpec {
  name: string; // series name (run / stat); escaped in tooltips
  color: string;
  data: LineData;
  dashed?: boolean;
  stack?: string;
  area?: boolean;
  step?: boolean;
  width?: number;
  /**
   * No line: only the area under it, at this opacity (0: nothing drawn). A
   * band is a `fill: 0` series at its lower edge and a filled one of its
   * width stacked on it (see bandSpecs in compare.ts).
   */
  fill?: number;
  /** tooltip formatting of the original value */
  fmt?: (v: number | null) => string;
}

export interface RefLine {
  value: number;
  label: string;
  color?: string;
}

export interface LineChartSpec {
  series: LineSpec[];
  yLog?: boolean;
  yMin?: number;
  yMax?: number;
  yName?: string;
  yPercent?: boolean;
  refLines?: RefLine[];
  markStep?: number | null; // vertical line at a focus step
  markRange?: [number, number] | null; // shaded step range (a finding's steps)
  zoom?: [number, number] | null;
  legend?: boolean;
}

/** Number of data items handed to ECharts (gaps included). */
export function pointCount(series: LineSpec[]): number {
  return series.reduce((a, s) => a + s.data.points.length, 0);
}

export function lineOption(spec: LineChartSpec): Option {
  const legend = spec.legend ?? spec.series.length > 1;
  const yFmt = (v: number) => (spec.yPercent ? `${Math.round(v * 1000) / 10}%` : formatShort(v));
  const xsAll = spec.series.flatMap((s) => (s.data.points.length ? [s.data.points[0][0], s.data.points[s.data.points.length - 1][0]] : []));
  const span = xsAll.length ? Math.max(...xsAll) - Math.min(...xsAll) : 0;
  // one "NaN" label per distinct step, spaced out: never piled on each other
  const labelFlags = nonFiniteLabelFlags(spec.series.map((s) => s.data.nonFinite), span);
  // a range shared by several series is shaded once (stacked shades turn opaque)
  const shaded = new Set<string>();
  const series = spec.series.map((s, i) => {
    const markAreaData = s.data.nonFinite
      .filter((r) => r.to > r.from)
      .filter((r) => {
        const key = `${r.from}:${r.to}`;
        if (shaded.has(key)) return false;
        shaded.add(key);
        return true;
      })
      .map((r) => [
        { xAxis: r.from, itemStyle: { color: "rgba(211,47,47,0.12)" }, label: { show: false } },
        { xAxis: r.to },
      ]);
    const nfLines = s.data.nonFinite.map((r, k) => ({
      xAxis: r.from,
      name: r.label,
      lineStyle: { color: RED, type: "dashed", width: 1 },
      label: labelFlags[i][k]
        ? { show: true, formatter: r.label, color: RED, fontSize: 10, position: "end", distance: 5 }
        : { show: false },
    }));
    const focus =
      i === 0 && spec.markStep !== undefined && spec.markStep !== null
        ? [
            {
              xAxis: spec.markStep,
              name: "finding",
              lineStyle: { color: ORANGE, type: "solid", width: 1.5 },
              label: { show: true, formatter: `step ${spec.markStep}`, color: ORANGE, fontSize: 10, position: "insideEndBottom" },
            },
          ]
        : [];
    const markLines = [...nfLines, ...focus];
    return {
      type: "line",
      name: s.name,
      // On two value axes ECharts stacks the first numeric column: a stacked
      // series' points go [y, step, raw] (see stepOf).
      data: s.stack ? s.data.points.map(([x, y, raw]) => [y, x, raw]) : s.data.points,
      encode: s.stack ? { x: 1, y: 0 } : { x: 0, y: 1 },
      showSymbol: s.fill === undefined && s.data.points.length <= 40,
      symbolSize: 4,
      connectNulls: false,
      step: s.step ? "end" : undefined,
      stack: s.stack,
      sampling: s.stack ? undefined : "lttb",
      color: s.color,
      lineStyle: { width: s.width ?? 1.6, type: s.dashed ? "dashed" : "solid", opacity: s.fill === undefined ? 1 : 0 },
      areaStyle: s.fill ? { opacity: s.fill } : s.area ? { opacity: 0.55 } : undefined,
      emphasis: { focus: "series" },
      animation: false,
      markLine: markLines.length
        ? { symbol: "none", silent: true, animation: false, data: markLines }
        : undefined,
      markArea: (() => {
        const range =
          i === 0 && spec.markRange && spec.markRange[1] >= spec.markRange[0]
            ? [[{ xAxis: spec.markRange[0], itemStyle: { color: "rgba(245,124,0,0.10)" }, label: { show: false } }, { xAxis: spec.markRange[1] }]]
            : [];
        const data = [...markAreaData, ...range];
        return data.length ? { silent: true, label: { show: false }, data } : undefined;
      })(),
    };
  });
  // Reference lines are drawn as two-point dashed series: horizontal
  // markLines are not placed reliably on log axes.
  const xs = spec.series.flatMap((s) => s.data.points.map((p) => p[0]));
  const x0 = xs.length ? Math.min(...xs) : 0;
  const x1 = xs.length ? Math.max(...xs) : 1;
  const refSeries = (spec.refLines ?? [])
    .filter((r) => Number.isFinite(r.value) && (!spec.yLog || r.value > 0))
    .map((r) => ({
      type: "line",
      name: r.label,
      id: `ref:${r.label}`,
      data: [
        [x0, r.value],
        [x1, r.value],
      ],
      silent: true,
      showSymbol: false,
      symbol: "none",
      color: r.color ?? GREY,
      lineStyle: { color: r.color ?? GREY, type: "dashed", width: 1 },
      tooltip: { show: false },
      endLabel: { show: true, formatter: r.label, color: r.color ?? GREY, fontSize: 10, offset: [-4, -8], align: "right" },
      animation: false,
      z: 1,
    }));
  const specs = spec.series;
  const hasNonFinite = spec.series.some((s) => s.data.nonFinite.length > 0);
  let yMin: number | undefined = spec.yMin;
  let yMax: number | undefined = spec.yMax;
  if (spec.yLog && (yMin === undefined || yMax === undefined)) {
    // a shared range (several charts compared) comes in as yMin / yMax
    const r = logRange(spec.series, spec.refLines ?? []);
    if (r) [yMin, yMax] = r;
  }
  return {
    animation: false,
    grid: { left: 56, right: 32, top: legend ? 34 : hasNonFinite ? 26 : 14, bottom: 44 },
    legend: legend
      ? {
          type: "scroll",
          top: 0,
          left: 8,
          right: 8,
          itemHeight: 8,
          textStyle: { fontSize: 11, color: GREY },
          // long names cut in the middle, whole on hover
          formatter: (name: string) => middleEllipsis(name, LEGEND_CHARS),
          tooltip: { show: true },
          data: spec.series.map((s) => s.name),
        }
      : undefined,
    tooltip: {
      ...baseTooltip(),
      trigger: "axis",
      axisPointer: { type: "line", lineStyle: { color: "#bbb" } },
      formatter: (params: unknown) => lineTooltip(params as TooltipParam[], specs, spec.yPercent),
    },
    xAxis: {
      type: "value",
      name: "step",
      nameLocation: "end",
      nameGap: 4,
      // beside the axis line: below it, the name ran into the last tick label
      nameTextStyle: { color: GREY, fontSize: 10 },
      min: "dataMin",
      max: "dataMax",
      axisLabel: { ...VALUE_LABEL, formatter: (v: number) => formatShort(v) },
      splitLine: { show: false },
    },
    yAxis: {
      type: spec.yLog ? "log" : "value",
      name: spec.yName,
      nameTextStyle: { color: GREY, fontSize: 10, align: "left" },
      min: yMin,
      max: yMax,
      scale: !spec.yLog && spec.yMin === undefined,
      // an end padded past a tick (-0.05 and 1.05 around a 0/1 flag) gets no label: it would sit on the tick's
      axisLabel: {
        ...VALUE_LABEL,
        formatter: yFmt,
        showMinLabel: !spec.yLog && paddedEnd(yMin) ? false : undefined,
        showMaxLabel: !spec.yLog && paddedEnd(yMax) ? false : undefined,
      },
      splitLine: SPLIT_LINE,
    },
    dataZoom: zoomComponents(spec.zoom ?? null),
    series: [...series, ...refSeries],
  };
}

/** Whether an explicit linear axis end is off the tenths (a padding beside a round tick). */
function paddedEnd(v: number | undefined): boolean {
  return v !== undefined && Math.abs(v * 10 - Math.round(v * 10)) > 1e-9;
}

/** Decade-aligned range of a log axis covering the data and the reference lines. */
export function logRange(series: LineSpec[], refs: RefLine[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) {
    for (const p of s.data.points) {
      const y = p[1];
      if (y !== null && y > 0) {
        if (y < lo) lo = y;
        if (y > hi) hi = y;
      }
    }
  }
  if (lo > hi) return null;
  for (const r of refs) {
    if (r.value > 0 && Number.isFinite(r.value)) {
      lo = Math.min(lo, r.value);
      hi = Math.max(hi, r.value);
    }
  }
  let a = Math.floor(Math.log10(lo));
  let b = Math.ceil(Math.log10(hi));
  if (b <= a) b = a + 1;
  // ends on the axis' ticks: an end beside a tick (1e32 by 1e30) makes two labels collide
  const step = logTickStep(b - a);
  a = Math.floor(a / step) * step;
  b = Math.ceil(b / step) * step;
  return [Math.pow(10, a), Math.pow(10, b)];
}

/** Decades between the ticks of an ECharts log axis spanning `decades` (its LogScale's rule). */
export function logTickStep(decades: number): number {
  let step = Math.pow(10, Math.floor(Math.log10(decades)));
  if ((5 / decades) * step <= 0.5) step *= 10;
  return Math.max(1, step);
}

interface TooltipParam {
  seriesName: string;
  seriesIndex: number;
  value: unknown;
  color: string;
  data?: unknown;
}

/** The step of a line chart's tooltip item (a stacked series' points are [y, step, raw]). */
function stepOf(p: TooltipParam, specs: LineSpec[]): number | null {
  const v = p.value;
  return Array.isArray(v) ? (v[specs[p.seriesIndex]?.stack ? 1 : 0] as number) : null;
}

/** Axis tooltip of a line chart: step, then each series' exact original value. */
export function lineTooltip(params: TooltipParam[], specs: LineSpec[], percent = false): string {
  if (!Array.isArray(params)) return "";
  params = params.filter((p) => p.seriesIndex < specs.length);
  if (params.length === 0) return "";
  const step = stepOf(params[0], specs);
  const rows = params.map((p) => {
    const v = p.value as unknown[];
    if (!Array.isArray(v)) return "";
    const st = stepOf(p, specs);
    const raw = v[2] as number | null;
    const spec = specs[p.seriesIndex];
    const fmt = spec?.fmt ?? ((x: number | null) => formatExact(x) + (percent && x !== null && Number.isFinite(x) ? ` (${(x * 100).toFixed(2)}%)` : ""));
    const stepNote = st !== step ? ` <span class="muted">@${escapeHtml(st)}</span>` : "";
    return `<div>${marker(spec?.color ?? "#999", spec?.dashed)}${escapeHtml(p.seriesName)}: ${valueHtml(raw, () => fmt(raw))}${stepNote}</div>`;
  });
  return `<div class="muted" style="margin-bottom:2px">step <b>${escapeHtml(step)}</b></div>${rows.join("")}`;
}

// ---------------------------------------------------------------- heatmaps

export interface HeatmapSpec {
  xSteps: number[];
  yLabels: string[];
  cells: [number, number, number, number][];
  min: number;
  max: number;
  yName?: string;
  yInverse?: boolean;
  /** color ramp of the visual map */
  colors?: string[];
  /** extra fixed-colour cell groups: zero / non-finite gradients */
  extra?: { name: string; color: string; cells: [number, number, number, number][] }[];
  /** tooltip body for a cell: gets x index, y index, value, 4th column, extra group name */
  cellTooltip: (x: number, y: number, v: number, aux: number, group: string | null) => string;
  /** y tick labels, one per row (null: no tick); default: the row labels, thinned to fit */
  yTicks?: (string | null)[];
  markY?: { index: number; label: string } | null;
  markX?: { index: number; label: string } | null;
  highlightY?: number | null;
  zoom?: [number, number] | null; // index window
  plotHeight?: number; // approximate plot height in px (for label density)
  visualLabel?: (v: number) => string;
}

export function heatmapPoints(spec: HeatmapSpec): number {
  return spec.cells.length + (spec.extra ?? []).reduce((a, e) => a + e.cells.length, 0);
}

/** The focus marks of a heatmap (chosen step column, highlighted row, reference row). */
export function heatmapMarks(
  spec: Pick<HeatmapSpec, "xSteps" | "yLabels" | "markX" | "markY" | "highlightY" | "yInverse">,
): { markLine: unknown } {
  const marks: Record<string, unknown>[] = [];
  if (spec.markY) {
    marks.push({
      yAxis: spec.yLabels[spec.markY.index],
      name: spec.markY.label,
      lineStyle: { color: "#1565c0", type: "dashed", width: 1 },
      label: { show: true, formatter: spec.markY.label, color: "#1565c0", fontSize: 10, position: "insideEndTop" },
    });
  }
  if (spec.markX) {
    marks.push({
      xAxis: String(spec.xSteps[spec.markX.index]),
      name: spec.markX.label,
      lineStyle: { color: "#1565c0", type: "solid", width: 1.5 },
      // above the plot (the line's end is at the bottom of an inverted y axis)
      label: { show: true, formatter: spec.markX.label, color: "#1565c0", fontSize: 10, position: spec.yInverse ? "start" : "end", distance: 2 },
    });
  }
  return { markLine: { symbol: "none", silent: true, animation: false, data: marks } };
}

/** y-axis labels with the highlighted row marked (canvas text, never HTML). */
export function heatmapYAxisLabel(
  spec: Pick<HeatmapSpec, "highlightY" | "yLabels" | "plotHeight" | "yTicks">,
  width: number,
): Record<string, unknown> {
  const hl = spec.highlightY ?? -1;
  const maxLabels = Math.max(2, Math.floor((spec.plotHeight ?? 200) / 12));
  const every = Math.max(1, Math.ceil(spec.yLabels.length / maxLabels));
  const ticks = spec.yTicks;
  const text = (v: string, i: number) => (ticks ? (ticks[i] ?? "") : v);
  return {
    ...AXIS_LABEL,
    // always show the highlighted row's label
    interval: (i: number) => i === hl || (ticks ? ticks[i] !== null : i % every === 0),
    fontSize: 10,
    width,
    overflow: "truncate",
    formatter: (v: string, i: number) => (i === hl ? `\u25B6 ${text(v, i)}` : text(v, i)),
    color: (_v: unknown, i: number) => themed(i === hl ? "#1565c0" : GREY),
    fontWeight: "normal",
  };
}

export function heatmapOption(spec: HeatmapSpec): Option {
  const { markLine } = heatmapMarks(spec);
  const longest = spec.yLabels.reduce((a, l) => Math.max(a, l.length), 0);
  const left = Math.min(150, Math.max(48, longest * 6 + 12));
  const main = {
    type: "heatmap",
    id: "main",
    name: "value",
    data: spec.cells,
    encode: { x: 0, y: 1, value: 2 },
    progressive: 0,
    animation: false,
    emphasis: { disabled: true },
    markLine,
  };
  const extra = (spec.extra ?? []).map((e) => ({
    type: "heatmap",
    name: e.name,
    data: e.cells,
    encode: { x: 0, y: 1 },
    itemStyle: { color: e.color },
    progressive: 0,
    animation: false,
    emphasis: { disabled: true },
  }));
  const names = ["value", ...(spec.extra ?? []).map((e) => e.name)];
  return {
    animation: false,
    grid: { left, right: 56, top: spec.yName || spec.markX ? 26 : 16, bottom: 44 },
    tooltip: {
      ...baseTooltip(),
      trigger: "item",
      formatter: (p: { value: [number, number, number, number]; seriesIndex: number }) => {
        const [x, y, v, aux] = p.value;
        return spec.cellTooltip(x, y, v, aux, p.seriesIndex === 0 ? null : names[p.seriesIndex]);
      },
    },
    xAxis: {
      type: "category",
      data: spec.xSteps.map(String),
      name: "step",
      nameLocation: "end",
      nameGap: 4,
      nameTextStyle: { color: GREY, fontSize: 10 },
      axisLabel: { ...AXIS_LABEL, hideOverlap: true },
      splitArea: { show: false },
    },
    yAxis: {
      type: "category",
      data: spec.yLabels,
      inverse: spec.yInverse ?? false,
      name: spec.yName,
      nameTextStyle: { color: GREY, fontSize: 10 },
      axisLabel: heatmapYAxisLabel(spec, left - 8),
    },
    visualMap: {
      type: "continuous",
      seriesIndex: 0,
      dimension: 2,
      min: spec.min,
      max: spec.max > spec.min ? spec.max : spec.min + 1e-9,
      calculable: false,
      orient: "vertical",
      right: 4,
      top: 12,
      itemWidth: 10,
      itemHeight: 110,
      textStyle: { fontSize: 10, color: GREY },
      text: [
        spec.visualLabel ? spec.visualLabel(spec.max) : formatShort(spec.max),
        spec.visualLabel ? spec.visualLabel(spec.min) : formatShort(spec.min),
      ],
      textGap: 4,
      inRange: { color: spec.colors ?? ["#fff3e0", "#ffb74d", "#f57c00", "#bf360c", "#3e1000"] },
    },
    dataZoom: zoomComponents(spec.zoom ?? null, "index"),
    series: [main, ...extra],
  };
}

// ---------------------------------------------------------------- bars

export interface BarSpec {
  labels: string[]; // categories (variables), escaped in tooltips
  values: (number | null)[]; // drawn value per category (null = not drawn)
  colors?: (string | null)[];
  /**
   * With yLog: NaN/Inf values are drawn as full-height red bars labelled
   * "NaN" / "Inf", exact zeros as short grey stubs labelled "0" (instead of
   * nothing, which reads as "not recorded").
   */
  markSpecial?: boolean;
  /** approximate width of the chart in pixels (to decide whether labels fit) */
  widthPx?: number;
  /** with yLog: the [floor, top] decades of the axis (shared by charts compared side by side) */
  logDecades?: [number, number] | null;
  yLog?: boolean;
  yName?: string;
  tooltip: (index: number) => string;
  refLines?: RefLine[];
  highlight?: number | null;
}

/**
 * Bars; with yLog the bars are drawn as log10(value) above a decade-aligned
 * floor on a linear axis (ECharts log-axis bars grow from the top), and the
 * axis labels show the values.
 */
export function barOption(spec: BarSpec): Option {
  const longest = spec.labels.reduce((a, l) => Math.max(a, l.length), 0);
  // rotate the category labels only when they would not fit side by side
  const fits = spec.widthPx
    ? spec.labels.length * (longest * 6 + 8) <= spec.widthPx - 74
    : spec.labels.length * Math.max(longest, 4) <= 64;
  const rotate = fits ? 0 : 30;
  const drawable = spec.values.map((v) =>
    v === null || !Number.isFinite(v) || (spec.yLog && v <= 0) ? null : v,
  );
  let base = 0;
  let top = 1;
  if (spec.yLog) {
    const logs = drawable.filter((v): v is number => v !== null).map(Math.log10);
    for (const r of spec.refLines ?? []) if (r.value > 0) logs.push(Math.log10(r.value));
    base = logs.length ? Math.floor(Math.min(...logs)) - 1 : 0;
    top = logs.length ? Math.max(Math.ceil(Math.max(...logs)), base + 1) : 1;
    if (spec.logDecades) [base, top] = spec.logDecades;
  }
  const y = (v: number) => (spec.yLog ? Math.log10(v) - base : v);
  const data = drawable.map((v, i) => {
    const raw = spec.values[i];
    const style = {
      color: spec.colors?.[i] ?? ORANGE,
      borderColor: spec.highlight === i ? "#1565c0" : undefined,
      borderWidth: spec.highlight === i ? 2 : 0,
    };
    if (v === null && spec.yLog && spec.markSpecial && raw !== null && raw !== undefined) {
      if (!Number.isFinite(raw)) {
        return {
          value: top - base,
          itemStyle: { ...style, color: "rgba(211,47,47,0.25)", borderColor: RED, borderWidth: 1, borderType: "dashed" },
          label: { show: true, position: "insideTop", formatter: Number.isNaN(raw) ? "NaN" : "Inf", color: RED, fontSize: 10, fontWeight: "bold" },
        };
      }
      if (raw === 0) {
        return {
          value: Math.min(0.15, (top - base) * 0.04),
          itemStyle: { ...style, color: "#9e9e9e" },
          label: { show: true, position: "top", formatter: "0", color: GREY, fontSize: 10 },
        };
      }
    }
    return { value: v === null ? null : y(v), itemStyle: style };
  });
  return {
    animation: false,
    grid: { left: 56, right: 18, top: 22, bottom: rotate ? 70 : 30 },
    tooltip: {
      ...baseTooltip(),
      trigger: "axis",
      axisPointer: { type: "shadow" },
      formatter: (params: { dataIndex: number }[]) =>
        Array.isArray(params) && params.length ? spec.tooltip(params[0].dataIndex) : "",
    },
    xAxis: {
      type: "category",
      data: spec.labels,
      axisLabel: { ...AXIS_LABEL, fontSize: 10, rotate, interval: 0, width: 110, overflow: "truncate" },
    },
    yAxis: {
      type: "value",
      name: spec.yName,
      nameTextStyle: { color: GREY, fontSize: 10, align: "left" },
      min: 0,
      max: spec.yLog ? top - base : undefined,
      interval: spec.yLog ? Math.max(1, Math.ceil((top - base) / 6)) : undefined,
      axisLabel: {
        ...VALUE_LABEL,
        // an axis with no finite bar (all NaN / zero) has no scale to show
        show: !spec.yLog || drawable.some((v) => v !== null),
        formatter: (v: number) => formatShort(spec.yLog ? Math.pow(10, v + base) : v),
      },
      splitLine: SPLIT_LINE,
    },
    series: [
      {
        type: "bar",
        data,
        barMaxWidth: 36,
        animation: false,
        markLine: spec.refLines?.length
          ? {
              symbol: "none",
              silent: true,
              data: spec.refLines
                .filter((r) => !spec.yLog || r.value > 0)
                .map((r) => ({
                  yAxis: spec.yLog ? Math.log10(r.value) - base : r.value,
                  lineStyle: { color: r.color ?? GREY, type: "dashed" },
                  label: { formatter: r.label, color: r.color ?? GREY, fontSize: 10, position: "insideEndTop" },
                })),
            }
          : undefined,
      },
    ],
  };
}

export { echarts };
