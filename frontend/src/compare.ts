// The Compare view's pure logic: the tag and the grouping regex guessed from
// the runs, the compare route's query, the band chart's series and the text
// of the tables. The statistics themselves come from the server
// (tb_plugin/compare.py, the same document as `tb-health compare --json`).

import type { LineSpec } from "./charts";
import { decodeNumber, decodeSeries } from "./decode";
import { lineData } from "./shape";
import type { CompareSettings } from "./state";
import { RUN_COLORS } from "./colors";
import type { CompareGroup, ComparePair, CompareResponse, RawNumber } from "./types";

/**
 * Grouping regexes tried in turn (JavaScript and Python read them alike): the
 * first that at least two runs match is the guess. Validation runs first: a
 * seed's train and validation runs must not both count.
 */
const GROUP_GUESSES = [
  String.raw`^(.*)/seed\d+/validation$`,
  String.raw`^(.*)/seed\d+/train$`,
  String.raw`^(.*)/seed\d+$`,
  String.raw`^(.*)[_-]seed\d+/validation$`,
  String.raw`^(.*)[_-]seed\d+/train$`,
  String.raw`^(.*)[_-]seed\d+$`,
];

/** The grouping regex guessed from run names; "" (group by recorded configuration) when none fits. */
export function guessGroupRegex(runs: string[]): string {
  for (const guess of GROUP_GUESSES) {
    const re = new RegExp(guess);
    if (runs.filter((r) => re.test(r)).length >= 2) return guess;
  }
  return "";
}

/** The tag compared first: epoch_loss, else a loss, else the first tag not written by tb_plugin. */
export function defaultTag(tags: string[]): string | null {
  const own = tags.filter((t) => !t.startsWith("health/"));
  return own.find((t) => t === "epoch_loss") ?? own.find((t) => t.includes("loss")) ?? own[0] ?? tags[0] ?? null;
}

/** Settings for `tags` and `runs`, keeping what `previous` chose where it still applies. */
export function compareSettings(tags: string[], runs: string[], previous: CompareSettings | null): CompareSettings | null {
  if (previous && tags.includes(previous.tag)) return previous;
  const tag = defaultTag(tags);
  if (tag === null) return null;
  if (previous) return { ...previous, tag };
  return { tag, group: guessGroupRegex(runs), run: "", final: "last", k: 3, band: "ci", showRuns: false };
}

/** The compare route's query parameters of `s`. */
export function compareQuery(s: CompareSettings): Record<string, string | undefined> {
  return {
    tag: s.tag,
    group: s.group || undefined,
    run: s.run || undefined,
    final: s.final === "mean_last" ? `mean-last-${s.k}` : s.final,
    band: s.band,
    runs: s.showRuns ? "1" : undefined,
  };
}

export const BAND_LABELS: Record<CompareSettings["band"], string> = {
  ci: "95% CI of the mean",
  sd: "± 1 SD",
  se: "± 1 SE",
  minmax: "min to max",
};

export const FINAL_LABELS: Record<CompareSettings["final"], string> = {
  last: "last value",
  best: "best value",
  mean_last: "mean of the last K records",
};

export function groupColor(i: number): string {
  return RUN_COLORS[i % RUN_COLORS.length];
}

/**
 * The band chart's series: per group its band (a `fill: 0` series at the
 * lower edge and the band's width stacked on it), each run on demand, then
 * the means on top.
 */
export function bandSpecs(groups: CompareGroup[], bandLabel: string, showRuns: boolean): LineSpec[] {
  const bands: LineSpec[] = [];
  const runs: LineSpec[] = [];
  const means: LineSpec[] = [];
  groups.forEach((g, i) => {
    const color = groupColor(i);
    const series = (values: RawNumber[] | undefined) => decodeSeries({ steps: g.series?.steps ?? [], values: values ?? [] });
    const low = series(g.series?.low);
    const high = series(g.series?.high);
    const highData = lineData(high);
    // drawn: the band's width, stacked on its lower edge; shown in the tooltip: its upper edge
    highData.points = highData.points.map(([x, y, raw], j) => {
      const l = low.values[j];
      return [x, y === null || l === null || !Number.isFinite(l) ? null : y - l, raw];
    });
    const stack = `band:${i}`;
    bands.push({ name: `${g.name} · ${bandLabel} low`, color, data: lineData(low), stack, fill: 0 });
    bands.push({ name: `${g.name} · ${bandLabel} high`, color, data: highData, stack, fill: 0.2 });
    if (showRuns) {
      for (const r of g.runs ?? []) {
        const data = lineData(decodeSeries({ steps: r.steps ?? [], values: r.values ?? [] }));
        runs.push({ name: `${g.name} · ${r.run}`, color, data, width: 0.7 });
      }
    }
    means.push({ name: `${g.name} · mean`, color, data: lineData(series(g.series?.mean)), width: 2.2 });
  });
  return [...bands, ...runs, ...means];
}

// ---------------------------------------------------------------- tables

/** A statistic in a table: 4 significant digits; "–" when undefined. */
export function formatStat(v: RawNumber | undefined): string {
  const x = decodeNumber(v ?? null);
  if (x === null || !Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2).replace("e+", "e");
  return String(Number(x.toPrecision(4)));
}

/** "low to high", or "–" when either end is undefined. */
export function formatInterval(low: RawNumber | undefined, high: RawNumber | undefined): string {
  const a = formatStat(low);
  const b = formatStat(high);
  return a === "–" || b === "–" ? "–" : `${a} to ${b}`;
}

/** A p-value: 2 significant digits, "< 0.001" below that. */
export function formatP(p: RawNumber | undefined): string {
  const x = decodeNumber(p ?? null);
  if (x === null || !Number.isFinite(x)) return "–";
  return x < 0.001 ? "< 0.001" : String(Number(x.toPrecision(2)));
}

export const GROUP_COLUMNS: [string, string][] = [
  ["Group", "The runs whose names the grouping regex gives the same group"],
  ["n", "Runs with a final value"],
  ["Mean", "Mean of the runs' final values"],
  ["SD", "Standard deviation of the final values (between seeds)"],
  ["95% CI", "95% confidence interval of the mean (Student t)"],
  ["Median", ""],
  ["IQM", "Interquartile mean: the mean of the middle half (from 8 runs)"],
];

/** One row of text per group, in GROUP_COLUMNS' order. */
export function groupRow(g: CompareGroup): string[] {
  const f = g.final;
  return [g.name, String(f?.n ?? 0), formatStat(f?.mean), formatStat(f?.sd), formatInterval(f?.ci_low, f?.ci_high),
    formatStat(f?.median), formatStat(f?.iqm)];
}

export const PAIR_COLUMNS: [string, string][] = [
  ["A vs B", ""],
  ["Difference (95% CI)", "mean(A) - mean(B), with Welch's 95% confidence interval"],
  ["p", "Welch's t test, two-sided (not corrected for several pairs)"],
  ["Hedges' g", "The difference in pooled standard deviations (small-sample corrected)"],
  ["P(A beats B)", "The chance that a run of A is better than a run of B (Mann-Whitney), 95% bootstrap CI"],
  ["Paired over shared seeds", "Difference and p of a paired t test over the seeds both groups ran"],
];

/** One row of text per pair, in PAIR_COLUMNS' order. */
export function pairRow(p: ComparePair): string[] {
  const paired = p.paired
    ? `n = ${p.paired.n}: ${formatStat(p.paired.difference)} (${formatInterval(p.paired.ci_low, p.paired.ci_high)}), p ${pText(p.paired.p_value)}`
    : "–";
  return [
    `${p.a} vs ${p.b}`,
    `${formatStat(p.difference)} (${formatInterval(p.ci_low, p.ci_high)})`,
    formatP(p.p_value),
    formatStat(p.hedges_g),
    `${formatStat(p.p_a_beats_b)} (${formatInterval(p.p_a_beats_b_ci_low, p.p_a_beats_b_ci_high)})`,
    paired,
  ];
}

function pText(p: RawNumber): string {
  const t = formatP(p);
  return t.startsWith("<") || t === "–" ? t : `= ${t}`;
}

/** "last value of epoch_loss (lower is better)". */
export function finalText(r: CompareResponse): string {
  const f = r.final;
  const what = f?.method === "mean_last" ? `mean of the last ${f.k} records` : f?.method === "best" ? "best value" : "last value";
  return `${what} of ${r.tag} (${f?.higher_is_better ? "higher" : "lower"} is better)`;
}
