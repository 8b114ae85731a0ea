import { describe, expect, it } from "vitest";
import {
  alignToSteps,
  binIndexOf,
  classShares,
  companionRuns,
  dashboardFor,
  downsampleIndices,
  effectiveClasses,
  gradNormHeatmap,
  histogramHeatmap,
  lineData,
  matchVariable,
  nearestIndex,
  nonFiniteRanges,
  profileAt,
  requestWidth,
  rowShares,
  shortNames,
  stepExtent,
  zoomWindow,
} from "../src/shape";

describe("lineData", () => {
  it("turns non-finite values into gaps and red ranges", () => {
    const d = lineData({ steps: [0, 1, 2, 3, 4], values: [1, NaN, NaN, 2, Infinity] });
    expect(d.points.map((p) => p[1])).toEqual([1, null, null, 2, null]);
    expect(d.points[1][2]).toBeNaN();
    expect(d.finiteCount).toBe(2);
    expect(d.nonFinite).toEqual([
      { from: 1, to: 2, label: "NaN" },
      { from: 4, to: 4, label: "Infinity" },
    ]);
  });
  it("drops non-positive values on a log axis but keeps them for the tooltip", () => {
    const d = lineData({ steps: [0, 1], values: [0, 1e-3] }, { log: true });
    expect(d.points).toEqual([
      [0, null, 0],
      [1, 1e-3, 1e-3],
    ]);
  });
  it("mixed non-finite runs are labelled non-finite; nulls do not break a run", () => {
    expect(nonFiniteRanges([0, 1, 2], [NaN, null, -Infinity])).toEqual([{ from: 0, to: 2, label: "non-finite" }]);
  });
});

describe("downsampling and alignment", () => {
  it("keeps first and last", () => {
    expect(downsampleIndices(10, 3)).toEqual([0, 5, 9]);
    expect(downsampleIndices(3, 10)).toEqual([0, 1, 2]);
    expect(downsampleIndices(0, 10)).toEqual([]);
    const idx = downsampleIndices(1000, 100);
    expect(idx.length).toBe(100);
    expect(idx[0]).toBe(0);
    expect(idx[99]).toBe(999);
  });
  it("aligns by exact step", () => {
    expect(alignToSteps([0, 2, 4], { steps: [2, 4, 6], values: [1, 2, 3] })).toEqual([null, 1, 2]);
  });
  it("nearest index", () => {
    expect(nearestIndex([0, 10, 20], 14)).toBe(1);
    expect(nearestIndex([0, 10, 20], 16)).toBe(2);
    expect(nearestIndex([0, 10, 20], -5)).toBe(0);
    expect(nearestIndex([0, 10, 20], 99)).toBe(2);
    expect(nearestIndex([], 3)).toBe(-1);
  });
  it("extent and zoom window", () => {
    expect(stepExtent([[5, 9], [], [1, 3]])).toEqual([1, 9]);
    expect(stepExtent([[]])).toBeNull();
    const [a, b] = zoomWindow(400, 500, [0, 1000]);
    expect(a).toBeLessThanOrEqual(400);
    expect(b).toBeGreaterThanOrEqual(500);
    expect(a).toBeGreaterThan(0);
    expect(zoomWindow(0, 1000, [0, 1000])).toEqual([0, 1000]);
  });
  it("request width is clamped", () => {
    expect(requestWidth(450)).toBe(450);
    expect(requestWidth(5000)).toBe(1000);
    expect(requestWidth(10)).toBe(100);
    expect(requestWidth(NaN)).toBe(500);
  });
});

describe("histograms", () => {
  it("row shares", () => {
    expect(rowShares([[1, 3], [0, 0]])).toEqual([[0.25, 0.75], [0, 0]]);
  });
  it("bin index of 1/K", () => {
    const edges = Array.from({ length: 41 }, (_, i) => i / 40);
    expect(binIndexOf(edges, 0.1)).toBe(4);
    expect(binIndexOf(edges, 1)).toBe(39);
    expect(binIndexOf(edges, 1.5)).toBe(-1);
    expect(binIndexOf(edges, NaN)).toBe(-1);
  });
  it("heatmap cells: column-normalised, zeros left out; seed 000's pile at 1/K", () => {
    const edges = Array.from({ length: 41 }, (_, i) => i / 40);
    const row = new Array(40).fill(0);
    row[4] = 64;
    const hm = histogramHeatmap({ edges, steps: [10, 20], counts: [row, row] });
    expect(hm.xSteps).toEqual([10, 20]);
    expect(hm.cells).toEqual([
      [0, 4, 1, 64],
      [1, 4, 1, 64],
    ]);
    expect(hm.max).toBe(1);
    expect(hm.yLabels[4]).toBe("0.1–0.125");
  });
  it("heatmap downsamples columns", () => {
    const hm = histogramHeatmap({ edges: [0, 1], steps: [0, 1, 2, 3, 4], counts: [[1], [1], [1], [1], [1]] }, 3);
    expect(hm.xSteps).toEqual([0, 2, 4]);
  });
});

describe("class shares", () => {
  const edges = Array.from({ length: 4 }, (_, i) => i);
  it("predicted vs label shares, aligned by step", () => {
    const cs = classShares(
      { edges, steps: [0, 1], counts: [[2, 1, 1], [4, 0, 0]] },
      { edges, steps: [1], counts: [[1, 1, 2]] },
    );
    expect(cs.steps).toEqual([0, 1]);
    expect(cs.series.map((s) => s.label)).toEqual(["class 0", "class 1", "class 2"]);
    expect(cs.series[0].predicted).toEqual([0.5, 1]);
    expect(cs.series[0].labels).toEqual([null, 0.25]);
    expect(cs.series[2].labels).toEqual([null, 0.5]);
    expect(cs.hasLabels).toBe(true);
  });
  it("groups the tail into other", () => {
    const k = 20;
    const e = Array.from({ length: k + 1 }, (_, i) => i);
    const counts = [Array.from({ length: k }, (_, i) => (i === 7 ? 100 : 1))];
    const cs = classShares({ edges: e, steps: [0], counts }, null, 5);
    expect(cs.series.length).toBe(5);
    expect(cs.series.some((s) => s.label === "class 7")).toBe(true);
    expect(cs.series[4].label).toBe("other (16 classes)");
    const total = cs.series.reduce((a, s) => a + s.predicted[0], 0);
    expect(total).toBeCloseTo(1);
    expect(cs.hasLabels).toBe(false);
  });
  it("effective classes", () => {
    expect(effectiveClasses("binary", 1)).toBe(2);
    expect(effectiveClasses("multiclass", 10)).toBe(10);
    expect(effectiveClasses("regression", 1)).toBe(1);
    expect(effectiveClasses("multiclass", null)).toBeNull();
  });
});

describe("gradients", () => {
  const vars = ["seq/d/kernel", "seq/d/bias", "seq/d_1/kernel"];
  it("log10 heatmap with zero and non-finite cells apart", () => {
    const hm = gradNormHeatmap(vars, [0, 1], [[1e-6, 0], [NaN, null], [1, 10]]);
    expect(hm.cells).toEqual([
      [0, 0, -6, 1e-6],
      [0, 2, 0, 1],
      [1, 2, 1, 10],
    ]);
    expect(hm.zeroCells).toEqual([[1, 0, 0, 0]]);
    expect(hm.nonFiniteCells.length).toBe(1);
    expect(hm.min).toBe(-6);
    expect(hm.max).toBe(1);
  });
  it("profile at a step", () => {
    const p = profileAt(vars, { norm: [[1, 2], [3, 4], [5, null]], zero_fraction: [[0, 0.5]] }, 1);
    expect(p.map((e) => e.values.norm)).toEqual([2, 4, null]);
    expect(p[0].values.zero_fraction).toBe(0.5);
    expect(p[1].values.zero_fraction).toBeNull();
  });
  it("short names strip the common prefix", () => {
    expect(shortNames(vars)).toEqual(["d/kernel", "d/bias", "d_1/kernel"]);
    expect(shortNames(["a/kernel"])).toEqual(["a/kernel"]);
  });
  it("matches a finding's layer to a variable, preferring the kernel", () => {
    expect(matchVariable(["seq/d/bias", "seq/d/kernel", "seq/d_1/kernel"], "d")).toBe(1);
    expect(matchVariable(vars, "d_1")).toBe(2);
    expect(matchVariable(vars, "seq/d/bias")).toBe(1);
    expect(matchVariable(vars, "nope")).toBe(-1);
    expect(matchVariable(vars, null)).toBe(-1);
  });
});

describe("findings and runs", () => {
  it("routes finding kinds to a dashboard", () => {
    expect(dashboardFor("vanishing_gradients")).toBe("gradients");
    expect(dashboardFor("exploding_gradients")).toBe("gradients");
    expect(dashboardFor("update_ratio_low")).toBe("gradients");
    expect(dashboardFor("dead_layer")).toBe("gradients");
    expect(dashboardFor("uniform_predictions")).toBe("collapse");
    expect(dashboardFor("tie_inflated_accuracy")).toBe("collapse");
    expect(dashboardFor("zero_logits")).toBe("collapse");
    expect(dashboardFor("something", { variable: "a/kernel" })).toBe("gradients");
    expect(dashboardFor("nonfinite", { variables_affected: 2 }, "s/d/kernel")).toBe("gradients");
    expect(dashboardFor("nonfinite", { records_with_nonfinite: 3 }, null)).toBe("collapse");
    expect(dashboardFor("nonfinite", {}, "s/d/kernel", ["s/d/kernel"])).toBe("gradients");
    expect(dashboardFor("output_activation_mismatch", {}, "logits", ["s/logits/kernel"])).toBe("collapse");
  });
  it("finds the train/validation companion", () => {
    const all = ["exp/train", "exp/validation", "other/train"];
    expect(companionRuns("exp/train", all)).toEqual(["exp/validation"]);
    expect(companionRuns("exp/validation", all)).toEqual(["exp/train"]);
    expect(companionRuns("other/train", all)).toEqual([]);
    expect(companionRuns("train", ["train", "validation"])).toEqual(["validation"]);
  });
});
