import { describe, expect, it } from "vitest";
import { decadeTicks, definedUpdateRatios, occupiedBins } from "../src/views/gradients";

describe("update ratios", () => {
  it("leave a gap, not a NaN, where a zero weight makes the ratio undefined", () => {
    // variable 0: a zero-initialised bias (NaN at step 0); variable 1: weights gone NaN
    const ratios = [[NaN, 1e-3], [1e-3, NaN]];
    const weights = [[0.5, 0.6], [1, NaN]];
    const out = definedUpdateRatios(ratios, weights);
    expect(out[0]).toEqual([null, 1e-3]);
    expect(out[1][0]).toBe(1e-3);
    expect(Number.isNaN(out[1][1])).toBe(true);
  });
});

describe("log10|g| histogram", () => {
  const edges = Array.from({ length: 51 }, (_, i) => -12 + i * 0.301);
  const hist = (filled: number[]) => ({
    edges,
    steps: [0],
    counts: [edges.slice(0, -1).map((_, b) => (filled.includes(b) ? 3 : 0))],
  });

  it("keeps the bins some run fills, and one more each side", () => {
    expect(occupiedBins([hist([20, 22]), hist([25])])).toEqual([19, 26]);
    expect(occupiedBins([hist([0, 49])])).toEqual([0, 49]);
    expect(occupiedBins([hist([])])).toBeNull();
  });

  it("ticks the decades, thinned to the room", () => {
    const e = edges.slice(19, 28); // -6.28 .. -3.87
    const ticks = decadeTicks(e, 8);
    expect(ticks.filter((t) => t !== null)).toEqual(["-6", "-5", "-4"]);
    ticks.forEach((t, b) => {
      if (t !== null) expect(Number(t) >= e[b] && Number(t) < e[b + 1]).toBe(true);
    });
    expect(decadeTicks(edges, 4).filter((t) => t !== null)).toEqual(["-12", "-8", "-4", "0"]);
  });
});
