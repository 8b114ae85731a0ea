// The Compare view: the guessed tag and grouping, the route query, the
// table text, the band series; and the view over fake routes (health first,
// then the band chart and the tables, errors of the route shown as text).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearCache, setFetcher } from "../src/api";
import { lineOption, lineTooltip } from "../src/charts";
import {
  bandSpecs,
  compareQuery,
  compareSettings,
  defaultTag,
  formatInterval,
  formatP,
  formatStat,
  groupRow,
  guessGroupRegex,
  pairRow,
} from "../src/compare";
import { render } from "../src/index";
import type { CompareGroup, ComparePair, CompareResponse } from "../src/types";
import { installFakeCanvas, q, qa, resetPage, respond, until } from "./dom_helpers";

const XSS = "<img src=x onerror=alert(1)>";

const RUNS = {
  runs: [
    { run: "cfg/bug/seed0/train", status: "unhealthy", findings: [], predictions: [], gradients: [], has_manifest: true },
    { run: "cfg/fix/seed0/train", status: "healthy", findings: [], predictions: [], gradients: [], has_manifest: true },
  ],
};

function group(name: string, mean: number): CompareGroup {
  return {
    name,
    label: name,
    runs: [0, 1, 2].map((s) => ({ run: `cfg/${name}/seed${s}/validation`, seed: `/seed${s}`, final: mean + s / 100, excluded: null, steps: [0, 1, 2], values: [1, mean + 0.1, mean + s / 100] })),
    series: { steps: [0, 1, 2], n: [3, 3, 3], mean: [1, mean + 0.1, mean + 0.01], low: [null, mean, mean - 0.02], high: [null, mean + 0.2, mean + 0.04] },
    final: { n: 3, mean: mean + 0.01, sd: 0.01, ci_low: mean - 0.0148, ci_high: mean + 0.0348, median: mean + 0.01, iqm: null, min: mean, max: mean + 0.02 },
  };
}

const PAIR: ComparePair = {
  a: "bug",
  b: XSS,
  difference: -0.05,
  ci_low: -0.0731,
  ci_high: -0.0269,
  p_value: 0.00042,
  hedges_g: -4.0,
  p_a_beats_b: 1,
  p_a_beats_b_ci_low: 1,
  p_a_beats_b_ci_high: 1,
  min_detectable_sd: 3.07,
  seeds_needed: null,
  paired: { n: 3, difference: -0.05, ci_low: -0.05, ci_high: -0.05, p_value: "NaN" },
  health_differs: true,
  verdict: { outcome: "a_better", text: "bug is better (difference -0.05, 95% CI -0.0731 to -0.0269, p = 0.00042)" },
};

const DOC: CompareResponse = {
  schema: "tb-health-compare/1",
  tag: "epoch_loss",
  grouping: { by: "regex", regex: String.raw`^(.*)/seed\d+/validation$`, run_filter: null },
  final: { method: "last", k: null, higher_is_better: false, direction: "tag_name" },
  band: { kind: "ci", level: 0.95 },
  health: {
    compared: true,
    differs: true,
    warnings: ["group bug: 3 of 3 runs have train_mode_inactive (error), against fix: 0 of 3: the difference may be a bug, not the configuration"],
    groups: {
      bug: { runs: 3, with_records: 3, kinds: { train_mode_inactive: { runs: 3, severity: "error", message: "dropout0 ran in inference mode." } } },
      [XSS]: { runs: 3, with_records: 3, kinds: {} },
    },
  },
  groups: [group("bug", 0.2), group(XSS, 0.25)],
  pairs: [PAIR],
  notes: [],
};

describe("guesses", () => {
  it("groups seeds by the text before /seedN, validation runs first", () => {
    const runs = ["a/seed0/train", "a/seed0/validation", "a/seed1/validation", "b/seed0/validation", "seed000_fixed/validation"];
    const guess = guessGroupRegex(runs);
    expect(guess).toBe(String.raw`^(.*)/seed\d+/validation$`);
    const re = new RegExp(guess);
    expect(runs.filter((r) => re.test(r)).map((r) => (re.exec(r) as RegExpExecArray)[1])).toEqual(["a", "a", "b"]);
    expect(guessGroupRegex(["a/seed0/train", "b/seed1/train"])).toBe(String.raw`^(.*)/seed\d+/train$`);
    expect(guessGroupRegex(["lr0.1_seed3", "lr0.2_seed3"])).toBe(String.raw`^(.*)[_-]seed\d+$`);
    expect(guessGroupRegex(["run1", "run2/train"])).toBe("");
  });

  it("compares epoch_loss first, else a loss, else a tag not written by tb_plugin", () => {
    expect(defaultTag(["epoch_accuracy", "epoch_loss", "health/x"])).toBe("epoch_loss");
    expect(defaultTag(["acc", "val_loss", "health/x"])).toBe("val_loss");
    expect(defaultTag(["acc", "health/x"])).toBe("acc");
    expect(defaultTag(["health/x"])).toBe("health/x");
    expect(defaultTag([])).toBeNull();
  });

  it("keeps the user's settings while their tag exists", () => {
    const s = compareSettings(["epoch_loss"], ["a/seed0/validation", "b/seed0/validation"], null);
    expect(s).toEqual({ tag: "epoch_loss", group: String.raw`^(.*)/seed\d+/validation$`, run: "", final: "last", k: 3, band: "ci", showRuns: false });
    const mine = { ...(s as NonNullable<typeof s>), group: "(x)", band: "sd" as const };
    expect(compareSettings(["epoch_loss", "acc"], [], mine)).toBe(mine);
    expect(compareSettings(["acc"], [], mine)).toEqual({ ...mine, tag: "acc" });
    expect(compareSettings([], [], mine)).toBeNull();
  });

  it("spells the route's query", () => {
    const s = compareSettings(["epoch_loss"], [], null) as NonNullable<ReturnType<typeof compareSettings>>;
    expect(compareQuery(s)).toEqual({ tag: "epoch_loss", group: undefined, run: undefined, final: "last", band: "ci", runs: undefined });
    expect(compareQuery({ ...s, group: "(a)", run: "val", final: "mean_last", k: 5, band: "minmax", showRuns: true })).toEqual({
      tag: "epoch_loss",
      group: "(a)",
      run: "val",
      final: "mean-last-5",
      band: "minmax",
      runs: "1",
    });
  });
});

describe("table text", () => {
  it("formats statistics, intervals and p-values", () => {
    expect(formatStat(0.216789)).toBe("0.2168");
    expect(formatStat(-12345.6)).toBe("-12350");
    expect(formatStat(0.00001234)).toBe("1.23e-5");
    expect(formatStat(null)).toBe("–");
    expect(formatStat("NaN")).toBe("–");
    expect(formatInterval(0.1852, 0.249)).toBe("0.1852 to 0.249");
    expect(formatInterval(null, 0.249)).toBe("–");
    expect(formatP(0.4108)).toBe("0.41");
    expect(formatP(0.008117)).toBe("0.0081");
    expect(formatP(0.0000021)).toBe("< 0.001");
    expect(formatP(null)).toBe("–");
  });

  it("gives a row per group and per pair", () => {
    expect(groupRow(group("bug", 0.2))).toEqual(["bug", "3", "0.21", "0.01", "0.1852 to 0.2348", "0.21", "–"]);
    expect(pairRow(PAIR)).toEqual([
      `bug vs ${XSS}`,
      "-0.05 (-0.0731 to -0.0269)",
      "< 0.001",
      "-4",
      "1 (1 to 1)",
      "n = 3: -0.05 (-0.05 to -0.05), p –",
    ]);
  });
});

describe("band series", () => {
  it("stacks each band's width on its lower edge; the tooltip shows the upper edge", () => {
    const specs = bandSpecs([group("bug", 0.2)], "95% CI", false);
    expect(specs.map((s) => [s.name, s.fill, s.stack])).toEqual([
      ["bug · 95% CI low", 0, "band:0"],
      ["bug · 95% CI high", 0.2, "band:0"],
      ["bug · mean", undefined, undefined],
    ]);
    const high = specs[1].data.points;
    expect(high[0]).toEqual([0, null, null]);
    expect(high[1][0]).toBe(1);
    expect(high[1][1]).toBeCloseTo(0.2);
    expect(high[1][2]).toBeCloseTo(0.4);
    // ECharts stacks a value axis' first column: stacked points go [y, step, raw].
    const option = lineOption({ series: specs }) as { series: { data: unknown[][]; encode: unknown }[] };
    expect(option.series[1].encode).toEqual({ x: 1, y: 0 });
    expect(option.series[2].encode).toEqual({ x: 0, y: 1 });
    expect(option.series[1].data[1][1]).toBe(1);
    const tip = lineTooltip([{ seriesName: specs[1].name, seriesIndex: 1, value: option.series[1].data[1], color: "" }], specs);
    expect(tip).toContain("step <b>1</b>");
    expect(tip).toContain("<b>0.4</b>");
    const withRuns = bandSpecs([group("bug", 0.2), group("fix", 0.3)], "SD", true);
    expect(withRuns.filter((s) => s.name.includes("/seed")).length).toBe(6);
    expect(withRuns.slice(-2).map((s) => s.name)).toEqual(["bug · mean", "fix · mean"]);
  });
});

// ---------------------------------------------------------------- the view


installFakeCanvas();

beforeEach(resetPage);
afterEach(() => clearCache());

function serve(compare: (url: URL) => Response): string[] {
  const asked: string[] = [];
  setFetcher(async (u) => {
    const url = new URL(u, "http://x/");
    if (u === "./runs") return respond(RUNS);
    if (url.pathname === "/scalar_tags") return respond({ tags: ["epoch_loss", "health/predictions/entropy"], runs: DOC.groups.flatMap((g) => g.runs.map((r) => r.run)) });
    if (url.pathname === "/compare") {
      asked.push(url.search);
      return compare(url);
    }
    return respond({ error: "not found" }, 404);
  });
  return asked;
}

async function openCompare(): Promise<void> {
  render();
  await until(() => q('[data-testid="overview"]') !== null);
  (q('[data-testid="tab-compare"]') as HTMLElement).click();
}

describe("compare view", () => {
  it("shows health first, then the band chart, the groups and the verdicts", async () => {
    const asked = serve(() => respond(DOC));
    await openCompare();
    await until(() => q('[data-testid="compare-pairs"]') !== null);
    expect(new URLSearchParams(asked[0]).get("group")).toBe(String.raw`^(.*)/seed\d+/validation$`);
    expect(new URLSearchParams(asked[0]).get("tag")).toBe("epoch_loss");
    const order = ["compare-health", "chart-compare-band", "compare-groups", "compare-pairs"].map((t) =>
      qa("[data-testid]").findIndex((e) => e.getAttribute("data-testid") === t),
    );
    expect(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]))).toBe(true);
    expect(q('[data-testid="compare-health"]')?.getAttribute("data-differs")).toBe("true");
    expect(q('[data-testid="compare-health-warning"]')?.textContent).toContain("3 of 3 runs have train_mode_inactive");
    const chart = q('[data-testid="chart-compare-band"]') as HTMLElement;
    await until(() => chart.getAttribute("data-points") !== null);
    expect(Number(chart.getAttribute("data-points"))).toBe(2 * 3 * 3);
    expect(qa('[data-testid="compare-groups"] tr[data-group]').map((r) => r.getAttribute("data-group"))).toEqual(["bug", XSS]);
    const verdict = q('[data-testid="compare-verdict"]') as HTMLElement;
    expect(verdict.getAttribute("data-outcome")).toBe("a_better");
    expect(verdict.textContent).toContain("Verdict: bug is better");
    expect(verdict.textContent).toContain("health differs");
    expect(qa("img").length).toBe(0); // names are text, never HTML
  });

  it("asks again with the chosen band and the runs; a bad regex's message is shown", async () => {
    const asked = serve((url) =>
      url.searchParams.get("group") === "(x" ? respond({ error: "bad --group regular expression '(x': missing )" }, 400) : respond(DOC),
    );
    await openCompare();
    await until(() => q('[data-testid="compare-pairs"]') !== null);
    const band = q('[data-testid="compare-band"]') as HTMLSelectElement;
    band.value = "minmax";
    band.dispatchEvent(new Event("change"));
    await until(() => asked.length === 2 && q('[data-testid="compare-pairs"]') !== null);
    expect(new URLSearchParams(asked[1]).get("band")).toBe("minmax");
    const final = q('[data-testid="compare-final"]') as HTMLSelectElement;
    expect((q('[data-testid="compare-k"]') as HTMLInputElement).hidden).toBe(true);
    final.value = "mean_last";
    final.dispatchEvent(new Event("change"));
    await until(() => asked.length === 3 && q('[data-testid="compare-pairs"]') !== null);
    expect(new URLSearchParams(asked[2]).get("final")).toBe("mean-last-3");
    expect((q('[data-testid="compare-k"]') as HTMLInputElement).hidden).toBe(false);
    const runs = q('[data-testid="compare-show-runs"]') as HTMLInputElement;
    runs.checked = true;
    runs.dispatchEvent(new Event("change"));
    await until(() => asked.length === 4 && q('[data-testid="chart-compare-band"][data-points]') !== null);
    expect(new URLSearchParams(asked[3]).get("runs")).toBe("1");
    expect(Number(q('[data-testid="chart-compare-band"]')?.getAttribute("data-points"))).toBe(2 * 3 * 3 + 6 * 3);
    const regex = q('[data-testid="compare-group"]') as HTMLInputElement;
    regex.value = "(x";
    regex.dispatchEvent(new Event("change"));
    await until(() => q('[data-testid="compare-error"]') !== null);
    expect(q('[data-testid="compare-error"]')?.textContent).toBe("bad --group regular expression '(x': missing )");
    expect((q('[data-testid="compare-group"]') as HTMLInputElement).value).toBe("(x");
  });

  it("says when health was not compared", async () => {
    serve(() => respond({ ...DOC, health: { compared: false, differs: false, warnings: [], groups: {} }, pairs: [], notes: ["only one group"] }));
    await openCompare();
    await until(() => q('[data-testid="compare-groups"]') !== null);
    expect(q('[data-testid="compare-health"]')?.getAttribute("data-differs")).toBe("unknown");
    expect(q('[data-testid="compare-pairs"]')).toBeNull();
    expect(q('[data-testid="compare-note"]')?.textContent).toBe("Note: only one group");
  });
});
