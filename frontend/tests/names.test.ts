import { describe, expect, it } from "vitest";
import { middleEllipsis, nameSpan, tailStart } from "../src/names";

const LONG = "sweep_2024_11/optimizer_sgd_learning_rate_0.05_batch_size_32_seed_7";

describe("long names", () => {
  it("cut in the middle keep the end that tells train from validation", () => {
    const t = middleEllipsis(`${LONG}/train`, 30);
    const v = middleEllipsis(`${LONG}/validation`, 30);
    expect(t.length).toBe(30);
    expect(t.endsWith("/train")).toBe(true);
    expect(v.endsWith("/validation")).toBe(true);
    expect(t.startsWith("sweep_2024")).toBe(true);
    expect(middleEllipsis("short/train", 30)).toBe("short/train");
  });

  it("keep the last characters of a name without a short last part", () => {
    const name = "x".repeat(50) + "_seed_7";
    expect(name.slice(tailStart(name))).toBe(name.slice(-12));
    expect(middleEllipsis(name, 20).endsWith("_seed_7")).toBe(true);
  });

  it("keep a short name or a short head whole", () => {
    for (const name of ["dead_relu", "exploding_sgd", "a/train"]) {
      const s = nameSpan(name);
      expect(s.querySelector(".mid-head")).toBeNull();
      expect(s.querySelector(".mid-tail")?.textContent).toBe(name);
    }
    expect(nameSpan("run1/train").querySelector(".mid-tail")?.textContent).toBe("/train");
  });

  it("show the whole name on hover, as text", () => {
    const s = nameSpan(`${LONG}/<img src=x>`);
    expect(s.title).toBe(`${LONG}/<img src=x>`);
    expect(s.textContent).toBe(`${LONG}/<img src=x>`);
    expect(s.querySelector(".mid-tail")?.textContent).toBe("/<img src=x>");
    expect(s.querySelector("img")).toBeNull();
  });
});
