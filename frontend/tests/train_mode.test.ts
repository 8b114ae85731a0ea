// The train-mode dashboard over fake routes: train-mode findings open it,
// the layers table marks the layers behind them, each Dropout /
// BatchNormalization gets a chart with the finding's steps shaded.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearCache, setFetcher } from "../src/api";
import { render } from "../src/index";
import { dashboardFor, dashboardTitle } from "../src/shape";
import { findingLayers, markedRange } from "../src/views/train_mode";
import { installFakeCanvas, q, qa, resetPage, respond, until } from "./dom_helpers";

const XSS = "<img src=x onerror=alert(1)>";

const inactive = {
  kind: "train_mode_inactive",
  severity: "error",
  layer: "net/bn",
  first_step: 0,
  last_step: 4,
  evidence: {
    cause: "model_call",
    layers: {
      "net/bn": { class: "BatchNormalization", flag: "None", moving_mean_change_max: 0 },
      "net/drop": { class: "Dropout", flag: "False", expected_zero_fraction: 0.7, observed_zero_fraction: 0.5, standard_error: 0.002 },
    },
  },
  message: "bn, drop ran in inference mode during training from step 0.",
  suggestion: "Add `training=None` to Net.call.",
};
const missing = {
  kind: "training_arg_missing",
  severity: "error",
  layer: "net",
  first_step: 0,
  last_step: 4,
  evidence: { model: "net", class: "Net", layers: ["net/bn", "net/drop"] },
  message: "Net.call does not accept `training`.",
  suggestion: "Add `training=None`.",
};

const RUNS = {
  runs: [
    {
      run: "bad/train",
      status: "unhealthy",
      findings: [inactive, missing],
      predictions: [],
      gradients: [{ name: "gradients", variables: ["net/hidden/kernel"] }],
      has_manifest: true,
      train_mode: [{ name: "train_mode", layers: ["net/bn", "net/drop", XSS] }],
    },
    {
      run: "good/train",
      status: "healthy",
      findings: [],
      predictions: [],
      gradients: [],
      has_manifest: true,
      train_mode: [{ name: "train_mode", layers: ["net/bn", "net/drop"] }],
    },
  ],
};

const series = (values: unknown[]) => ({ steps: values.map((_, i) => i), values });
function layers(bad: boolean) {
  const flag = bad ? 0 : 1;
  return [
    {
      path: "net/bn",
      class: "BatchNormalization",
      kind: "batchnorm",
      flag: bad ? "None" : "True",
      caller: "net",
      trainable: true,
      momentum: 0.99,
      series: {
        training: series([flag, flag, flag, flag, flag]),
        root_training: series([flag, flag, flag, flag, flag]),
        mean_change: series(bad ? [0, 0, 0, 0, 0] : [0.01, 0.008, 0.007, 0.006, 0.005]),
        variance_change: series(bad ? [0, 0, 0, 0, 0] : [0.02, 0.01, 0.01, 0.01, 0.01]),
      },
    },
    {
      path: "net/drop",
      class: "Dropout",
      kind: "dropout",
      rate: 0.4,
      flag: bad ? "False" : "True",
      caller: "net",
      trainable: true,
      series: {
        training: series([flag, flag, flag, flag, flag]),
        root_training: series([flag, flag, flag, flag, flag]),
        observed_zero_fraction: series(bad ? [0.5, 0.5, 0.5, 0.5, 0.5] : [0.7, 0.69, 0.71, 0.7, 0.7]),
        expected_zero_fraction: series([0.7, 0.7, 0.7, 0.7, 0.7]),
        standard_error: series([0.002, 0.002, 0.002, 0.002, "NaN"]),
        dropped_fraction: series(bad ? [0, 0, 0, 0, 0] : [0.4, 0.38, 0.42, 0.4, 0.4]),
        dropped_standard_error: series([0.004, 0.004, 0.004, 0.004, "NaN"]),
      },
    },
    { path: XSS, class: XSS, kind: "other", flag: "True", caller: "net", series: { training: series([1, 1]) } },
  ];
}


function routes(u: string): Response {
  const url = new URL(u, "http://x/");
  const run = url.searchParams.get("run");
  if (u === "./runs") return respond(RUNS);
  if (url.pathname === "/train_mode") return respond({ run, name: "train_mode", layers: layers(run === "bad/train") });
  if (url.pathname === "/manifest") return respond({ run, manifest: null });
  if (url.pathname === "/gradients")
    return respond({ run, name: "gradients", variables: [], steps: [], matrix: {}, first_last_ratio: series([]), thresholds: {} });
  return respond({ error: "not found" }, 404);
}


installFakeCanvas();

beforeEach(resetPage);
afterEach(() => clearCache());

describe("train-mode kinds", () => {
  it.each(["train_mode_inactive", "train_mode_overridden", "training_arg_missing", "dropout_rate_zero", "frozen_batchnorm"])(
    "%s opens the train-mode dashboard",
    (kind) => {
      expect(dashboardFor(kind, { layers: { "a/kernel": 1 } }, "net/bn", ["net/bn"])).toBe("train_mode");
    },
  );
  it("names the dashboards", () => {
    expect(dashboardTitle("train_mode")).toBe("train mode");
    expect(dashboardTitle("gradients")).toBe("gradients");
  });
  it("finds the layers of a finding and the steps to shade", () => {
    expect(findingLayers(inactive).sort()).toEqual(["net/bn", "net/drop"]);
    expect(findingLayers(missing).sort()).toEqual(["net", "net/bn", "net/drop"]);
    const fs = [{ run: "bad/train", f: inactive }];
    expect(markedRange(fs, "net/drop", null)).toEqual([0, 4]);
    expect(markedRange(fs, "net/other", null)).toBeNull();
  });
});

describe("train-mode dashboard", () => {
  it("a train_mode_inactive card opens it, with the layers table and a chart per layer", async () => {
    setFetcher(async (u) => routes(u));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    const card = q('[data-testid="finding-card"][data-kind="train_mode_inactive"]') as HTMLElement;
    expect(card.getAttribute("data-dashboard")).toBe("train_mode");
    expect(card.textContent).toContain("Open train mode dashboard");
    card.click();
    await until(() => q('[data-testid="train-mode-summary"]') !== null);
    expect(q('[data-testid="tab-train-mode"]')?.classList.contains("active")).toBe(true);
    expect(q('[data-testid="focus-banner"]')?.getAttribute("data-kind")).toBe("train_mode_inactive");
    // the layers behind the finding are red; the received flag is shown as received
    const row = q('[data-testid="train-mode-summary"] tr[data-run="bad/train"][data-layer="net/drop"]') as HTMLElement;
    const cells = Array.from(row.querySelectorAll("td")).map((td) => [td.textContent, td.classList.contains("bad")]);
    expect(cells).toContainEqual(["net/drop", true]);
    expect(cells).toContainEqual(["False", true]);
    expect(cells).toContainEqual(["50.0% / 70.0%", true]);
    // "other" layers are not listed; nothing is rendered as HTML
    expect(qa('[data-testid="train-mode-summary"] tr').length).toBe(3);
    expect(qa("img").length).toBe(0);
    const drop = q('[data-testid^="chart-tm-"][data-layer="net/drop"]') as HTMLElement;
    const bn = q('[data-testid^="chart-tm-"][data-layer="net/bn"]') as HTMLElement;
    await until(() => drop.getAttribute("data-points") !== null && bn.getAttribute("data-points") !== null);
    expect(Number(drop.getAttribute("data-points"))).toBeGreaterThan(0);
    expect(Number(bn.getAttribute("data-points"))).toBeGreaterThan(0);
    const flags = q('[data-testid="chart-train-flags"]') as HTMLElement;
    expect(Number(flags.getAttribute("data-points"))).toBeGreaterThan(0);
  });

  it("the tab compares a run with its twin; a run without records gets an explanation", async () => {
    setFetcher(async (u) => routes(u));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    (q('[data-testid="tab-train-mode"]') as HTMLElement).click();
    await until(() => q('[data-testid="train-mode-summary"]') !== null);
    expect(qa('[data-testid="train-mode-summary"] tr[data-run="good/train"]').length).toBe(2);
    const good = q('[data-testid="train-mode-summary"] tr[data-run="good/train"][data-layer="net/drop"]') as HTMLElement;
    expect(Array.from(good.querySelectorAll("td.bad")).length).toBe(0);
  });
});
