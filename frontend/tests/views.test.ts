// Dashboards over fake routes: the new pieces (run errors, last-step summary,
// model panel, regression outputs with step_edges) render, as text only.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearCache, setFetcher } from "../src/api";
import { groupRuns } from "../src/app";
import { render } from "../src/index";
import { installFakeCanvas, q, qa, resetPage, respond, until } from "./dom_helpers";

const XSS = "<img src=x onerror=alert(1)>";

const finding = (kind: string, layer: string | null, evidence: Record<string, unknown>) => ({
  kind,
  severity: "error",
  layer,
  first_step: 0,
  last_step: 4,
  evidence,
  message: `${kind} message`,
  suggestion: "fix it",
});

const RUNS = {
  runs: [
    {
      run: "relu/train",
      status: "unhealthy",
      findings: [
        finding("output_activation_mismatch", "m/logits/kernel", { output_layer: "logits", activation: "relu", from_logits: true }),
        finding("nonfinite", "m/logits/kernel", { first_step: 2, variables_affected: 1, first_nonfinite_step: { "m/logits/kernel": 2 } }),
        finding("tied_predictions", null, { tie_fraction: 1, accuracy: 0.15, tie_tolerant_accuracy: 1 }),
      ],
      predictions: [{ name: "predictions", task: "multiclass", num_classes: 7 }],
      gradients: [{ name: "gradients", variables: ["m/hidden/kernel", "m/hidden/bias", "m/logits/kernel", "m/logits/bias"] }],
      has_manifest: true,
    },
    {
      run: "relu/validation",
      status: "unhealthy",
      findings: [],
      predictions: [{ name: "predictions", task: "multiclass", num_classes: 7 }],
      gradients: [],
      has_manifest: false,
    },
    {
      run: "reg/train",
      status: "no_data",
      findings: [],
      predictions: [{ name: "predictions", task: "regression", num_classes: 1 }],
      gradients: [],
      has_manifest: false,
      error: `could not read run: ${XSS}`,
    },
  ],
};

const MANIFEST = {
  model: XSS,
  layers: [
    { name: "hidden", class: "Dense", activation: "elu", kernel_initializer: { class_name: "RandomNormal", config: { stddev: 0.001 } }, bias_initializer: null, params: 10, trainable_params: 10 },
    { name: XSS, class: "Dense", activation: "relu", kernel_initializer: { class_name: "GlorotUniform", config: {} }, bias_initializer: null, params: 7, trainable_params: 7 },
  ],
  output_layer: XSS,
  loss: { class: "SparseCategoricalCrossentropy", name: "scce", from_logits: true },
  optimizer: { class: "SGD", learning_rate: 0.01 },
  versions: { keras: "3" },
};

const series = (values: unknown[]) => ({ steps: values.map((_, i) => i), values });
const PREDICTIONS = {
  run: "relu/train",
  name: "predictions",
  task: "multiclass",
  num_classes: 7,
  from_logits: true,
  has_labels: true,
  scalars: {
    entropy: series([0.5, 0.9, 1, 1, 1]),
    tie_fraction: series([0, 0.5, 1, 1, 1]),
    zero_logit_fraction: series([0.2, 0.9, 1, 1, 1]),
    accuracy: series([0.3, 0.2, 0.15, 0.15, 0.15]),
    tie_tolerant_accuracy: series([0.3, 0.6, 1, 1, 1]),
    nonfinite: series([0, 0, 0, 0, 0]),
  },
  histograms: {
    top1_probability: { edges: [0, 0.25, 0.5, 0.75, 1], steps: [0, 4], counts: [[0, 1, 1, 2], [4, 0, 0, 0]] },
    predicted_classes: { edges: [0, 1, 2, 3, 4, 5, 6, 7], steps: [4], counts: [[4, 0, 0, 0, 0, 0, 0]] },
  },
};
const REGRESSION = {
  run: "reg/train",
  name: "predictions",
  task: "regression",
  num_classes: 1,
  from_logits: null,
  has_labels: true,
  scalars: { output_std: series([0.1, 1e-9]), target_std: series([0.5, 0.5]) },
  histograms: {
    outputs: {
      edges: [0.001, 0.001, 0.001],
      steps: [0, 1],
      counts: [[2, 2], [0, 4]],
      step_edges: [[-1, 0, 1], [0.001, 0.001, 0.001]],
    },
  },
};
const GRADIENTS = {
  run: "relu/train",
  name: "gradients",
  variables: ["m/hidden/kernel", "m/hidden/bias", "m/logits/kernel", "m/logits/bias"],
  shapes: { "m/hidden/kernel": [4, 8], "m/hidden/bias": [8], "m/logits/kernel": [8, 7], "m/logits/bias": [7] },
  steps: [0, 1, 2],
  matrix: {
    norm: [[1e-7, 1e-7, 1e-7], [1e-6, 1e-6, 0], [0.1, 0.1, "NaN"], [0.5, 0.5, "Infinity"]],
    zero_fraction: [[0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]],
    update_ratio: [[1e-6, 1e-6, 1e-6], [1e-5, 1e-5, 1e-5], [1e-3, 1e-3, null], [1e-3, 1e-3, null]],
  },
  first_last_ratio: series([1e-6, 1e-6, "NaN"]),
  thresholds: { vanishing_ratio: 0.001, exploding_ratio: 70, update_ratio_low: 1e-5, update_ratio_guideline: 0.001 },
};


function routes(u: string): Response {
  const url = new URL(u, "http://x/");
  const run = url.searchParams.get("run");
  if (u === "./runs") return respond(RUNS);
  if (url.pathname === "/manifest") return respond({ run, manifest: run === "relu/train" ? MANIFEST : null });
  if (url.pathname === "/predictions") return respond(run === "reg/train" ? REGRESSION : { ...PREDICTIONS, run });
  if (url.pathname === "/gradients") return respond(GRADIENTS);
  if (url.pathname === "/gradient_histogram") return respond({ run, name: "gradients", variable: "v", edges: [-2, -1, 0], steps: [0], counts: [[1, 1]] });
  return respond({ error: "not found" }, 404);
}

const click = (sel: string) => (q(sel) as HTMLElement).click();

installFakeCanvas();

beforeEach(resetPage);
afterEach(() => clearCache());

describe("runs", () => {
  it("groups runs by parent directory, keeping the order", () => {
    const g = groupRuns(["a/train", "b", "a/validation", "c/d/train", "/x", "y/"]);
    expect(g.map((x) => [x.parent, x.runs])).toEqual([
      ["a", ["a/train", "a/validation"]],
      [null, ["b"]],
      ["c/d", ["c/d/train"]],
      [null, ["/x"]],
      [null, ["y/"]],
    ]);
    expect(g[0].leaf("a/validation")).toBe("validation");
  });
});

describe("dashboards", () => {
  it("shows a run's error on its row, as text", async () => {
    setFetcher(async (u) => routes(u));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    const row = q('[data-testid="run-entry"][data-entry="reg/train"]');
    expect(row?.getAttribute("data-severity")).toBe("error");
    expect(row?.querySelector('[data-testid="entry-cause"]')?.textContent).toBe("could not be read");
    const detail = q('[data-testid="entry-detail"][data-entry="reg/train"]');
    expect(detail?.querySelector('[data-testid="run-error"]')?.textContent).toBe(`reg/train: could not read run: ${XSS}`);
    expect(qa("img").length).toBe(0);
    // the side bar groups train / validation under their experiment
    expect(qa(".hp-group-head").map((e) => e.textContent)).toEqual(["relu", "reg"]);
    expect(q('.hp-run[data-run="reg/train"]')?.textContent).toContain("error");
  });

  it("cards open the right dashboard: output activation -> collapse, gradient nonfinite -> gradients", async () => {
    setFetcher(async (u) => routes(u));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    const card = (k: string) => q(`[data-testid="finding-card"][data-kind="${k}"]`) as HTMLElement;
    expect(card("output_activation_mismatch").getAttribute("data-dashboard")).toBe("collapse");
    expect(card("nonfinite").getAttribute("data-dashboard")).toBe("gradients");
    // nested evidence is a folded table, not JSON
    expect(card("nonfinite").querySelector("details summary")?.textContent).toBe("first nonfinite step (1)");
    expect(card("nonfinite").textContent).not.toContain("{");
    card("output_activation_mismatch").click();
    await until(() => q('[data-testid="collapse-summary"]') !== null);
    expect(q('[data-testid="tab-collapse"]')?.classList.contains("active")).toBe(true);
    expect(q('[data-testid="focus-banner"]')?.getAttribute("data-kind")).toBe("output_activation_mismatch");
  });

  it("collapse: last-step summary with the output activation against from_logits, in red", async () => {
    setFetcher(async (u) => routes(u));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    click('[data-testid="tab-collapse"]');
    await until(() => q('[data-testid="collapse-summary"]') !== null);
    const row = q('[data-testid="collapse-summary"] tr[data-run="relu/train"]') as HTMLElement;
    const cells = Array.from(row.querySelectorAll("td")).map((td) => [td.textContent, td.classList.contains("bad")]);
    expect(cells).toContainEqual([`${XSS}: relu · from_logits=True`, true]);
    expect(cells).toContainEqual(["1.00", false]);
    expect(cells).toContainEqual(["100%", true]); // ties: a tied_predictions finding
    expect(cells).toContainEqual(["15.0%", true]);
    expect(cells).toContainEqual(["0.13 (1/K = 1/7)", false]);
    // the validation run borrows the train run's manifest
    const val = q('[data-testid="collapse-summary"] tr[data-run="relu/validation"]') as HTMLElement;
    expect(val.textContent).toContain("relu · from_logits=True");
    expect(qa("img").length).toBe(0);
  });

  it("collapse: regression outputs re-binned from step_edges; classifier charts listed as not recorded", async () => {
    setFetcher(async (u) => routes(u));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    click('.hp-run[data-run="relu/train"] input');
    click('.hp-run[data-run="relu/validation"] input');
    click('[data-testid="tab-collapse"]');
    await until(() => q('[data-testid="collapse-summary"]') !== null);
    const panel = q('[data-testid="chart-output-dist"]') as HTMLElement;
    await until(() => panel.getAttribute("data-points") !== null);
    expect(Number(panel.getAttribute("data-points"))).toBeGreaterThan(0);
    expect(q('[data-testid="chart-entropy"]')?.classList.contains("na-panel")).toBe(true);
    expect(q('[data-testid="chart-entropy"]')?.getAttribute("data-points")).toBe("0");
    expect(q('[data-testid="collapse-summary"] tr[data-run="reg/train"]')?.textContent).toContain("1e-9 / 0.5");
  });

  it("gradients: the model panel shows the manifest as text, tiny init and output mismatch in red", async () => {
    setFetcher(async (u) => routes(u));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    click('[data-testid="tab-gradients"]');
    await until(() => q('[data-testid="model-panel"]') !== null);
    const item = q('[data-testid="model-panel"] [data-run="relu/train"]') as HTMLElement;
    const bad = Array.from(item.querySelectorAll("summary .bad")).map((e) => e.textContent);
    expect(bad).toContain(`output ${XSS}: relu`);
    expect(bad).toContain("loss SparseCategoricalCrossentropy(from_logits=True)");
    expect(bad).toContain("kernel init RandomNormal(stddev=0.001)");
    expect(item.querySelectorAll("table tr").length).toBe(3);
    expect(qa("img").length).toBe(0);
    const heat = q('[data-testid="chart-grad-heatmap"]') as HTMLElement;
    await until(() => heat.getAttribute("data-points") !== null);
    expect(Number(heat.getAttribute("data-points"))).toBe(12);
  });
});
