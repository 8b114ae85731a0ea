import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearCache, setFetcher } from "../src/api";
import { createApp, runsFingerprint } from "../src/app";
import { render } from "../src/index";
import { q, qa, resetPage, respond, until } from "./dom_helpers";

const XSS = "<img src=x onerror=alert(1)>";

const RUNS = {
  runs: [
    {
      run: "relu/train",
      status: "unhealthy",
      findings: [
        {
          kind: "uniform_predictions",
          severity: "error",
          layer: "logits",
          first_step: 32,
          last_step: 598,
          evidence: { entropy: 1.0, tie_tolerant_accuracy: 0.99, bad: "NaN" },
          message: "Predictions are uniform.",
          suggestion: "Remove the ReLU on the logits.",
        },
        {
          kind: "vanishing_gradients",
          severity: "warning",
          layer: "dense",
          first_step: 0,
          last_step: 10,
          evidence: { first_last_ratio: 1e-8 },
          message: "Gradients fade.",
          suggestion: "Use ReLU + He init.",
        },
      ],
      predictions: [{ name: "predictions", task: "multiclass", num_classes: 10 }],
      gradients: [{ name: "gradients", variables: ["s/dense/kernel"] }],
      has_manifest: true,
    },
    {
      run: XSS,
      status: "no_data",
      findings: [
        {
          kind: "<script>x</script>",
          severity: "warning",
          layer: "<b>l</b>",
          first_step: "NaN",
          last_step: null,
          evidence: { "<i>k</i>": "<img src=y onerror=alert(2)>" },
          message: "<img src=z onerror=alert(3)>",
          suggestion: "<u>s</u>",
        },
      ],
      predictions: [],
      gradients: [],
      has_manifest: false,
    },
  ],
};



beforeEach(resetPage);
afterEach(() => clearCache());

describe("render()", () => {
  it("shows loading, then the overview with a row per sick run and its finding cards", async () => {
    let release: (r: Response) => void = () => undefined;
    setFetcher((u) => {
      expect(u).toBe("./runs");
      return new Promise<Response>((res) => (release = res));
    });
    render();
    expect(q('[data-testid="loading"]')).not.toBeNull();
    expect(q("style#health-plugin-style")).not.toBeNull();
    release(respond(RUNS));
    await until(() => q('[data-testid="overview"]') !== null);
    const rows = qa('[data-testid="run-entry"]');
    expect(rows.map((r) => [r.getAttribute("data-entry"), r.getAttribute("data-severity")])).toEqual([
      ["relu/train", "error"],
      [XSS, "warning"],
    ]);
    const cards = qa('[data-testid="finding-card"]');
    expect(cards.map((c) => c.getAttribute("data-kind"))).toEqual([
      "uniform_predictions",
      "vanishing_gradients",
      "<script>x</script>",
    ]);
    expect(cards[0].textContent).toContain("steps 32–598");
    expect(cards[0].textContent).toContain("Remove the ReLU on the logits.");
    expect(cards[0].querySelector(".nonfinite")?.textContent).toBe("NaN");
    for (const t of ["tab-overview", "tab-collapse", "tab-gradients"]) expect(q(`[data-testid="${t}"]`)).not.toBeNull();
  });

  it("renders hostile names as text only", async () => {
    setFetcher(async () => respond(RUNS));
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    expect(qa("img").length).toBe(0);
    expect(qa("script").length).toBe(0);
    expect(qa("u").length).toBe(0);
    expect(qa("i").length).toBe(0);
    expect(document.body.textContent).toContain(XSS);
    expect(document.body.textContent).toContain("<img src=z onerror=alert(3)>");
    expect(document.body.textContent).toContain("<b>l</b>");
  });

  it("shows the empty state when there are no runs", async () => {
    setFetcher(async () => respond({ runs: [] }));
    render();
    await until(() => q('[data-testid="empty-state"]') !== null);
    expect(q('[data-testid="empty-state"]')?.textContent).toContain(
      "No health data yet: add tb_plugin.HealthCallback(log_dir) to model.fit callbacks",
    );
  });

  it("shows the server's error message", async () => {
    setFetcher(async () => respond({ error: "Failed to read logdir" }, 500));
    render();
    await until(() => q('[data-testid="error-state"]') !== null);
    expect(q('[data-testid="error-state"]')?.textContent).toContain("Failed to read logdir");
  });

  it("an error in a dashboard fetch shows error-state with the message", async () => {
    setFetcher(async (u) =>
      u === "./runs" ? respond(RUNS) : respond({ error: "unknown run: relu/train" }, 404),
    );
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    (q('[data-testid="finding-card"][data-kind="uniform_predictions"]') as HTMLElement).click();
    await until(() => q('[data-testid="error-state"]') !== null);
    expect(q('[data-testid="tab-collapse"]')?.classList.contains("active")).toBe(true);
    expect(q('[data-testid="error-state"]')?.textContent).toContain("unknown run: relu/train");
  });

  it("a gradient finding opens the gradients tab", async () => {
    const seen: string[] = [];
    setFetcher(async (u) => {
      seen.push(u);
      return u === "./runs" ? respond(RUNS) : respond({ error: "nope" }, 404);
    });
    render();
    await until(() => q('[data-testid="overview"]') !== null);
    (q('[data-testid="finding-card"][data-kind="vanishing_gradients"]') as HTMLElement).click();
    await until(() => q('[data-testid="error-state"]') !== null);
    expect(q('[data-testid="tab-gradients"]')?.classList.contains("active")).toBe(true);
    expect(seen.some((u) => u.startsWith("./gradients?run=relu%2Ftrain&name=gradients&width="))).toBe(true);
  });
});

describe("auto-reload", () => {
  const runsAt = (lastStep: number, findings = RUNS.runs[0].findings) => ({
    runs: [{ ...RUNS.runs[0], findings, last_step: lastStep, last_wall_time: 1.7e9 + lastStep }],
  });

  it("re-renders when a run has new records, and only then", async () => {
    let body = runsAt(10);
    let runsFetches = 0;
    setFetcher(async (u) => {
      if (u === "./runs") runsFetches++;
      return respond(body);
    });
    const root = document.createElement("div");
    document.body.appendChild(root);
    createApp(root, { autoReloadMs: 20 });
    await until(() => q('[data-testid="overview"]') !== null);
    expect(qa('[data-testid="finding-card"]').length).toBe(2);
    const shown = q('[data-testid="overview"]');
    // Same listing: asked again, nothing re-rendered.
    await until(() => runsFetches >= 3);
    expect(q('[data-testid="overview"]')).toBe(shown);
    // A new record and a finding less: re-rendered with the new listing.
    body = runsAt(20, RUNS.runs[0].findings.slice(0, 1));
    await until(() => qa('[data-testid="finding-card"]').length === 1);
    expect(q('[data-testid="overview"]')).not.toBe(shown);
  });

  it("stops asking when unticked, and asks nothing when off", async () => {
    let runsFetches = 0;
    setFetcher(async (u) => {
      if (u === "./runs") runsFetches++;
      return respond(runsAt(10));
    });
    const root = document.createElement("div");
    document.body.appendChild(root);
    createApp(root, { autoReloadMs: 20 });
    await until(() => q('[data-testid="overview"]') !== null);
    const box = q('[data-testid="auto-reload"]') as HTMLInputElement;
    expect(box.checked).toBe(true);
    box.click();
    const before = runsFetches;
    await new Promise((r) => setTimeout(r, 120));
    expect(runsFetches).toBe(before);

    document.body.innerHTML = "";
    clearCache();
    runsFetches = 0;
    const other = document.createElement("div");
    document.body.appendChild(other);
    createApp(other, { autoReloadMs: 0 });
    await until(() => q('[data-testid="overview"]') !== null);
    expect(q('[data-testid="auto-reload"]')).toBeNull();
    await new Promise((r) => setTimeout(r, 120));
    expect(runsFetches).toBe(1);
  });

  it("fingerprints what changes when records arrive", () => {
    const a = runsAt(10).runs as never;
    expect(runsFingerprint(a)).toBe(runsFingerprint(runsAt(10).runs as never));
    expect(runsFingerprint(a)).not.toBe(runsFingerprint(runsAt(11).runs as never));
  });
});
