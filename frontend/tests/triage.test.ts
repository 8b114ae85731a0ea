import { describe, expect, it } from "vitest";
import { rootCause, triage } from "../src/triage";
import type { Finding, RunInfo } from "../src/types";

const f = (kind: string, severity = "error", caused_by: string | null = null, layer: string | null = null): Finding => ({
  kind,
  severity,
  layer,
  first_step: 0,
  last_step: 9,
  evidence: {},
  message: `${kind} message`,
  suggestion: `${kind} fix`,
  caused_by,
});

const run = (name: string, status: string, findings: Finding[], error?: string): RunInfo => ({
  run: name,
  status,
  findings,
  predictions: [],
  gradients: [],
  has_manifest: false,
  error,
});

// as the demo's logs: the cause in train, unlinked symptoms in validation
const RUNS = [
  run("a_healthy/train", "healthy", [f("converged", "info")]),
  run("a_healthy/validation", "healthy", []),
  run("relu/train", "unhealthy", [
    f("output_activation_mismatch"),
    f("prediction_collapse", "error", "output_activation_mismatch"),
    f("tied_predictions", "error", "output_activation_mismatch"),
    f("learning_rate_too_high", "warning"),
  ]),
  run("relu/validation", "unhealthy", [f("prediction_collapse"), f("tied_predictions")]),
  run("weights/train", "unhealthy", [f("class_bias", "warning")]),
  run("weights/validation", "unhealthy", [f("class_bias", "warning")]),
  run("broken", "no_data", [], "could not read"),
  run("empty", "no_data", []),
];

describe("triage", () => {
  it("merges train and validation, worst first, healthy last", () => {
    const entries = triage(RUNS);
    expect(entries.map((e) => [e.key, e.severity, e.sick])).toEqual([
      ["relu", "error", true],
      ["broken", "error", true],
      ["weights", "warning", true],
      ["a_healthy", "info", false],
      ["empty", null, false],
    ]);
    expect(entries[0].runs.map((r) => r.run)).toEqual(["relu/train", "relu/validation"]);
  });

  it("puts the root cause first with every run's symptoms under it", () => {
    const relu = triage(RUNS)[0];
    expect(relu.issues.map((i) => i.finding.kind)).toEqual(["output_activation_mismatch", "learning_rate_too_high"]);
    const cause = relu.issues[0];
    expect(cause.symptoms.map((s) => [s.finding.kind, s.runs])).toEqual([
      ["prediction_collapse", ["relu/train", "relu/validation"]],
      ["tied_predictions", ["relu/train", "relu/validation"]],
    ]);
    expect(relu.issues[1].symptoms).toEqual([]);
  });

  it("keeps an unexplained symptom as its own issue, merged across the runs", () => {
    const weights = triage(RUNS).find((e) => e.key === "weights");
    expect(weights?.issues.map((i) => [i.finding.kind, i.runs, i.symptoms.length])).toEqual([
      ["class_bias", ["weights/train", "weights/validation"], 0],
    ]);
  });

  it("names the root cause of a symptom, linked by the server or not", () => {
    const [train, validation] = [RUNS[2], RUNS[3]];
    expect(rootCause(RUNS, train.run, train.findings[1])?.finding.kind).toBe("output_activation_mismatch");
    expect(rootCause(RUNS, validation.run, validation.findings[1])?.finding.kind).toBe("output_activation_mismatch");
    expect(rootCause(RUNS, train.run, train.findings[0])).toBeNull();
    expect(rootCause(RUNS, "weights/validation", RUNS[5].findings[0])).toBeNull();
  });
});
