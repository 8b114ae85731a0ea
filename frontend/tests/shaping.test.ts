// Shaping logic added for the diagnosis' real findings and route fields:
// dashboard routing, per-step histogram edges, summaries, label spacing,
// shared log ranges, variables.
import { describe, expect, it } from "vitest";
import { decodeHistogram, decodeShapes } from "../src/decode";
import {
  dashboardFor,
  histogramMean,
  histogramRange,
  isKernelLike,
  lastPoint,
  layerOf,
  niceEdges,
  nonFiniteLabelFlags,
  onCommonBins,
  positiveRange,
  rebinRow,
  shapeText,
  sharedLogRange,
  topClassShare,
  uniformEdges,
} from "../src/shape";
import { chartForKind } from "../src/views/common";

const ev = (...keys: string[]) => Object.fromEntries(keys.map((k) => [k, 1]));

describe("dashboardFor on the findings tb-health check reports for demo_logs", () => {
  // [kind, layer, evidence keys, run's gradient variables, expected]
  const S = ["seed000/hidden1/kernel", "seed000/hidden1/bias", "seed000/logits/kernel", "seed000/logits/bias"];
  const L = ["linear_regression/dense1/kernel", "linear_regression/dense1/bias", "linear_regression/out/kernel"];
  const cases: [string, string | null, string[], string[], "collapse" | "gradients"][] = [
    ["class_collapse", null, ["accuracy", "label_share", "num_classes", "predicted_class", "prediction_share"], [], "collapse"],
    ["class_bias", null, ["accuracy", "label_share", "num_classes", "predicted_class", "prediction_share"], [], "collapse"],
    ["prediction_collapse", null, ["normalized_entropy", "tie_fraction", "zero_logit_fraction", "output_layer"], S, "collapse"],
    ["prediction_collapse", null, ["output_layer", "output_std", "std_ratio", "target_std"], [], "collapse"],
    ["dead_units", "mlp/dense1/bias", ["blocked_by", "dead_units", "units", "zero_gradient_fraction"], [], "gradients"],
    ["vanishing_gradients", "deep_sigmoid/dense_0/kernel", ["first_last_ratio", "last_layer", "layers"], [], "gradients"],
    ["exploding_gradients", null, ["abs_norm_threshold", "first_last_ratio", "per_layer"], L, "gradients"],
    // nonfinite is about either the gradients or the predictions
    ["nonfinite", "linear_regression/dense1/kernel", ["first_nonfinite_step", "first_step", "variables", "variables_affected"], L, "gradients"],
    ["nonfinite", "linear_regression/dense1/kernel", ["first_step"], [], "gradients"],
    ["nonfinite", null, ["first_step", "nonfinite_outputs_first", "records", "records_with_nonfinite"], L, "collapse"],
    // its layer is the output kernel, but the symptoms are in the predictions
    ["output_activation_mismatch", "seed000/logits/kernel", ["activation", "from_logits", "loss", "output_layer"], S, "collapse"],
    ["tied_predictions", null, ["accuracy", "accuracy_gap", "tie_fraction", "tie_tolerant_accuracy"], S, "collapse"],
  ];
  it.each(cases)("%s (layer %s)", (kind, layer, keys, vars, want) => {
    expect(dashboardFor(kind, ev(...keys), layer, vars)).toBe(want);
  });
  it("unknown kinds: by evidence, then by layer", () => {
    expect(dashboardFor("weird", ev("per_layer"))).toBe("gradients");
    expect(dashboardFor("weird", ev("tie_fraction"), "s/d/kernel", ["s/d/kernel"])).toBe("collapse");
    expect(dashboardFor("weird", {}, "d", ["s/d/kernel"])).toBe("gradients");
    expect(dashboardFor("weird", null, null)).toBe("collapse");
  });
  it("picks the chart that shows the finding", () => {
    expect(chartForKind("output_activation_mismatch", "collapse")).toBe("chart-zero-logits");
    expect(chartForKind("prediction_collapse", "collapse", true)).toBe("chart-regression-spread");
    expect(chartForKind("nonfinite", "collapse", true)).toBe("chart-regression-spread");
    expect(chartForKind("prediction_collapse", "collapse")).toBe("chart-entropy");
    expect(chartForKind("tied_predictions", "collapse")).toBe("chart-ties");
    expect(chartForKind("class_collapse", "collapse")).toBe("chart-class-shares");
    expect(chartForKind("class_bias", "collapse")).toBe("chart-class-shares");
    expect(chartForKind("dead_units", "gradients")).toBe("chart-zero-grad");
    expect(chartForKind("nonfinite", "gradients")).toBe("chart-grad-heatmap");
  });
});

describe("histograms with per-step edges (step_edges)", () => {
  const raw = {
    edges: [0, 1, 2],
    steps: [20, 10, "NaN"],
    counts: [
      [1, 3],
      [2, 2],
      [9, 9],
    ],
    step_edges: [
      [0, 1, 2],
      [-1, 0, 1],
      [5, 6, 7],
    ],
  };
  it("decodes them aligned with the sorted steps", () => {
    const h = decodeHistogram(raw);
    expect(h.steps).toEqual([10, 20]);
    expect(h.counts).toEqual([
      [2, 2],
      [1, 3],
    ]);
    expect(h.stepEdges).toEqual([
      [-1, 0, 1],
      [0, 1, 2],
    ]);
  });
  it("falls back to the shared edges for a malformed row, and has none without step_edges", () => {
    const h = decodeHistogram({ ...raw, steps: [1], counts: [[1, 1]], step_edges: [[0, "x"]] });
    expect(h.stepEdges).toEqual([[0, 1, 2]]);
    expect(decodeHistogram({ edges: [0, 1], steps: [0], counts: [[1]] }).stepEdges).toBeUndefined();
  });
  it("range covers every step's edges (rows with counts only)", () => {
    const h = decodeHistogram(raw);
    expect(histogramRange([h])).toEqual([-1, 2]);
    expect(histogramRange([{ edges: [3, "NaN", 9] as unknown as number[], steps: [0], counts: [[1, 1]] }])).toEqual([3, 9]);
    expect(histogramRange([])).toBeNull();
  });
  it("re-bins spreading each bin over its width", () => {
    expect(rebinRow([0, 2], [4], [0, 1, 2, 3])).toEqual([2, 2, 0]);
    expect(rebinRow([0.5, 1.5], [2], [0, 1, 2])).toEqual([1, 1]);
    // out-of-grid parts clamp into the end bins; counts are preserved
    const out = rebinRow([-1, 1, 3], [2, 2], [0, 1, 2]);
    expect(out.reduce((a, b) => a + b, 0)).toBeCloseTo(4);
    expect(out).toEqual([2, 2]);
  });
  it("a zero-width bin (constant batch) lands whole in the bin holding its value", () => {
    expect(rebinRow([0.25, 0.25, 0.25], [0, 32], [0, 0.5, 1])).toEqual([32, 0]);
    expect(rebinRow([1, 1], [5], [0, 0.5, 1])).toEqual([0, 5]);
  });
  it("onCommonBins puts every step on one grid", () => {
    const h = decodeHistogram(raw);
    const c = onCommonBins(h, [-1, 0, 1, 2]);
    expect(c.edges).toEqual([-1, 0, 1, 2]);
    expect(c.counts).toEqual([
      [2, 2, 0],
      [0, 1, 3],
    ]);
    expect(c.stepEdges).toBeUndefined();
    const plain = { edges: [0, 1], steps: [0], counts: [[1]] };
    expect(onCommonBins(plain)).toBe(plain);
    expect(onCommonBins(h).edges.length).toBe(41);
  });
  it("edges: uniform and round, zero-width ranges widened", () => {
    expect(uniformEdges(0, 1, 4)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(uniformEdges(2, 2, 2)).toEqual([1.9, 2, 2.1]);
    expect(uniformEdges(0, 0, 1)).toEqual([-0.5, 0.5]);
    const e = niceEdges(-0.434, 0.463, 40);
    expect(e[0]).toBeLessThanOrEqual(-0.434);
    expect(e[e.length - 1]).toBeGreaterThanOrEqual(0.463);
    expect(e.length - 1).toBeLessThanOrEqual(41);
    expect(e).toContain(0);
    for (const x of e) expect(String(x).length).toBeLessThan(8);
  });
});

describe("summaries", () => {
  it("histogram mean from bin centres", () => {
    expect(histogramMean([0, 0.5, 1], [1, 3])).toBeCloseTo(0.625);
    expect(histogramMean([0, 1], [0])).toBeNull();
  });
  it("last point with a value (NaN counts)", () => {
    expect(lastPoint({ steps: [1, 2, 3], values: [1, NaN, null] })?.step).toBe(2);
    expect(lastPoint({ steps: [1], values: [null] })).toBeNull();
    expect(lastPoint(undefined)).toBeNull();
  });
  it("top class of the last record", () => {
    expect(topClassShare({ edges: [0, 1, 2, 3], steps: [0, 5], counts: [[1, 1, 1], [0, 3, 1]] })).toEqual({
      step: 5,
      cls: 1,
      share: 0.75,
    });
    expect(topClassShare({ edges: [0, 1], steps: [0], counts: [[0]] })).toBeNull();
  });
});

describe("non-finite labels", () => {
  it("one label per distinct step, spaced out", () => {
    const r = (from: number) => ({ from, to: from + 1, label: "NaN" });
    // two series starting at the same step: one label (the overlap that was reported)
    expect(nonFiniteLabelFlags([[r(5)], [r(5)]], 100)).toEqual([[true], [false]]);
    // nearby starts within 12% of the span are not labelled again
    expect(nonFiniteLabelFlags([[r(5), r(8), r(50)]], 100)).toEqual([[true, false, true]]);
    expect(nonFiniteLabelFlags([[], []], 0)).toEqual([[], []]);
  });
});

describe("log ranges shared by charts side by side", () => {
  it("shares whole decades when the runs are comparable", () => {
    expect(sharedLogRange([[1e-4, 0.5], [3e-7, 0.2]])).toEqual([1e-7, 1]);
    expect(sharedLogRange([[2, 30]])).toEqual([1, 100]);
  });
  it("does not share when one run's outliers would squash the others", () => {
    expect(sharedLogRange([[1e-7, 1], [1, 1e11]])).toBeNull();
    expect(sharedLogRange([null, null])).toBeNull();
  });
  it("positive range skips zeros, negatives and non-finite values", () => {
    expect(positiveRange([0, -1, NaN, Infinity, null, 2, 0.5])).toEqual([0.5, 2]);
    expect(positiveRange([0])).toBeNull();
  });
});

describe("variables", () => {
  it("layer, kernel-ness and shape text", () => {
    expect(layerOf("seed002/W1/kernel")).toBe("seed002/W1");
    expect(layerOf("v0")).toBe("v0");
    expect(isKernelLike("a/b/bias", [16])).toBe(false);
    expect(isKernelLike("a/b/v", [16, 16])).toBe(true);
    expect(isKernelLike("a/b/kernel")).toBe(true);
    expect(isKernelLike("a/b/bias")).toBe(false);
    expect(shapeText([16, 16])).toBe("[16, 16] · 256 values");
    expect(shapeText([1])).toBe("[1] · 1 value");
    expect(shapeText(undefined)).toBe("");
  });
  it("decodes the gradients route's shapes, dropping bad entries", () => {
    expect(decodeShapes({ "a/kernel": [300, 96], "a/bias": [96], bad: [1, "x"], worse: "3", neg: [-1] })).toEqual({
      "a/kernel": [300, 96],
      "a/bias": [96],
    });
    expect(decodeShapes(null)).toEqual({});
    expect(decodeShapes([1, 2])).toEqual({});
  });
});
