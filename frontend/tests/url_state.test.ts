// The view kept in the URL, and the overview -> dashboard -> Back round trip
// over fake routes (the plugin on its own: its own hash keeps the view).
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearCache, setFetcher } from "../src/api";
import { render } from "../src/index";
import { formatView, parseView, type UrlView } from "../src/url_state";
import { installFakeCanvas, q, qa, until } from "./dom_helpers";

const VIEW: UrlView = {
  tab: "gradients",
  runs: ["exp, 1/train", "a&b=c"],
  focus: { run: "exp, 1/train", kind: "dead_units", layer: "m/dense/bias" },
  steps: [0, 178],
  layer: "m/dense/kernel",
  step: 42,
};

describe("url state", () => {
  it("round-trips a view through TensorBoard's hash, keeping TensorBoard's parts", () => {
    const hash = formatView("#health&tagFilter=loss&p.health.tab=collapse", VIEW);
    expect(hash.startsWith("#health&tagFilter=loss&p.health.tab=gradients&")).toBe(true);
    expect(hash).not.toContain("tab=collapse");
    expect(parseView(hash)).toEqual(VIEW);
  });

  it("reads a bare hash as the overview, and ignores what it does not know", () => {
    expect(parseView("#health")).toEqual({ tab: "overview", runs: null, focus: null, steps: null, layer: null, step: null });
    expect(parseView("#health&p.health.tab=nope&p.health.step=x").tab).toBe("overview");
    expect(formatView("#health&p.health.tab=gradients", { ...parseView(""), tab: "overview" })).toBe("#health");
  });
});

const finding = (kind: string, caused_by: string | null, suggestion: string) => ({
  kind,
  severity: "error",
  layer: null,
  first_step: 2,
  last_step: 8,
  evidence: { tie_fraction: 1 },
  message: `${kind} message`,
  suggestion,
  caused_by,
});
const run = (name: string, findings: unknown[]) => ({
  run: name,
  status: findings.length ? "unhealthy" : "healthy",
  findings,
  predictions: [{ name: "predictions", task: "multiclass", num_classes: 3 }],
  gradients: [],
  has_manifest: false,
});
const RUNS = {
  runs: [
    run("fine/train", []),
    run("fine/validation", []),
    run("relu/train", [
      finding("output_activation_mismatch", null, "Remove the ReLU."),
      finding("tied_predictions", "output_activation_mismatch", "Caused by the output activation: remove the ReLU."),
    ]),
    run("relu/validation", [finding("tied_predictions", null, "Look among this run's other findings.")]),
  ],
};
const series = (values: number[]) => ({ steps: values.map((_, i) => i * 2), values });
const PREDICTIONS = {
  name: "predictions",
  task: "multiclass",
  num_classes: 3,
  from_logits: true,
  has_labels: true,
  scalars: { entropy: series([0.5, 0.9, 1, 1, 1]), tie_fraction: series([0, 0.5, 1, 1, 1]) },
  histograms: {},
};

installFakeCanvas();

beforeEach(() => {
  history.replaceState(null, "", "/");
  document.head.innerHTML = "";
  document.body.innerHTML = "";
  clearCache();
  setFetcher(async (u) => {
    const url = new URL(u, "http://x/");
    if (u === "./runs") return new Response(JSON.stringify(RUNS));
    if (url.pathname === "/predictions") return new Response(JSON.stringify({ ...PREDICTIONS, run: url.searchParams.get("run") }));
    if (url.pathname === "/manifest") return new Response(JSON.stringify({ run: url.searchParams.get("run"), manifest: null }));
    return new Response(JSON.stringify({ error: "not found" }), { status: 404 });
  });
});
afterEach(() => clearCache());

const card = (run: string, kind: string) =>
  q(`[data-testid="finding-card"][data-run="${run}"][data-kind="${kind}"]`) as HTMLElement;

describe("overview -> dashboard -> Back", () => {
  it("one row per sick run with its root cause; the symptoms under it; healthy runs folded", async () => {
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    const rows = qa('[data-testid="run-entry"]');
    expect(rows.map((r) => [r.getAttribute("data-entry"), r.getAttribute("data-cause")])).toEqual([
      ["relu", "output_activation_mismatch"],
    ]);
    expect(rows[0].textContent).toContain("Remove the ReLU.");
    const detail = q('[data-testid="entry-detail"]') as HTMLElement;
    expect(detail.hidden).toBe(true);
    (rows[0] as HTMLElement).click();
    expect(detail.hidden).toBe(false);
    // the validation run's unlinked symptom sits under the train run's cause
    const symptom = card("relu/train", "tied_predictions");
    expect(symptom.getAttribute("data-caused-by")).toBe("output_activation_mismatch");
    expect(symptom.closest('[data-role="cause"]')?.getAttribute("data-kind")).toBe("output_activation_mismatch");
    expect(symptom.textContent).toContain("in train, validation");
    expect(q('[data-testid="healthy-runs"]')?.getAttribute("data-count")).toBe("1");
  });

  it("a symptom's dashboard shows the cause's fix; the URL keeps it; Back returns to the overview", async () => {
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    card("relu/train", "tied_predictions").click();
    await until(() => q('[data-testid="focus-banner"]') !== null);
    const banner = q('[data-testid="focus-banner"]') as HTMLElement;
    expect(banner.querySelector('[data-testid="focus-message"]')?.textContent).toBe("tied_predictions message");
    expect(banner.querySelector('[data-testid="focus-cause"]')?.getAttribute("data-kind")).toBe("output_activation_mismatch");
    expect(banner.querySelector('[data-testid="focus-suggestion"]')?.textContent).toBe("What to do: Remove the ReLU.");
    expect(banner.querySelector('[data-testid="focus-evidence"]')?.textContent).toContain("tie fraction");
    const view = parseView(location.hash);
    expect(view.tab).toBe("collapse");
    expect(view.focus).toEqual({ run: "relu/train", kind: "tied_predictions", layer: null });
    expect(view.runs).toEqual(["relu/train", "relu/validation"]);

    // a reload: a fresh app on the same URL shows the same view
    document.body.innerHTML = "";
    render();
    await until(() => q('[data-testid="focus-banner"]') !== null);
    expect(q('[data-testid="tab-collapse"]')?.getAttribute("aria-selected")).toBe("true");
    expect(qa(".hp-run input:checked").length).toBe(2);

    history.back();
    await until(() => q('[data-testid="overview"]') !== null);
    expect(parseView(location.hash).tab).toBe("overview");
    history.forward();
    await until(() => q('[data-testid="focus-banner"]') !== null);
  });

  it("a validation symptom opened on its own run names the cause of its train sibling", async () => {
    history.replaceState(null, "", "#p.health.tab=collapse&p.health.run=relu%2Fvalidation&p.health.kind=tied_predictions");
    render();
    await until(() => q('[data-testid="focus-banner"]') !== null);
    expect(q('[data-testid="focus-suggestion"]')?.textContent).toBe("What to do: Remove the ReLU.");
    expect(q('[data-testid="focus-banner"]')?.getAttribute("data-run")).toBe("relu/validation");
  });
});
