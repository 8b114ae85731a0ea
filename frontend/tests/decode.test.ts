import { describe, expect, it } from "vitest";
import { decodeHistogram, decodeMatrix, decodeNumber, decodeSeries, decodeStep } from "../src/decode";

describe("decodeNumber", () => {
  it("decodes the server's non-finite strings", () => {
    expect(decodeNumber("NaN")).toBeNaN();
    expect(decodeNumber("Infinity")).toBe(Infinity);
    expect(decodeNumber("-Infinity")).toBe(-Infinity);
  });
  it("passes numbers through and parses numeric strings", () => {
    expect(decodeNumber(0.25)).toBe(0.25);
    expect(decodeNumber("1e-3")).toBe(0.001);
    expect(decodeNumber(" -2.5 ")).toBe(-2.5);
  });
  it("maps anything else to null without throwing", () => {
    for (const v of [null, undefined, "", "abc", {}, [], true, "<img src=x>"]) expect(decodeNumber(v)).toBeNull();
  });
  it("decodeStep rejects non-finite steps", () => {
    expect(decodeStep("NaN")).toBeNull();
    expect(decodeStep(12)).toBe(12);
  });
});

describe("decodeSeries", () => {
  it("decodes values, drops bad steps, sorts by step", () => {
    const s = decodeSeries({ steps: [4, "NaN", 2, 6], values: [1, 2, "NaN", "-Infinity"] });
    expect(s.steps).toEqual([2, 4, 6]);
    expect(s.values[0]).toBeNaN();
    expect(s.values[1]).toBe(1);
    expect(s.values[2]).toBe(-Infinity);
  });
  it("handles missing and ragged input", () => {
    expect(decodeSeries(undefined)).toEqual({ steps: [], values: [] });
    expect(decodeSeries({ steps: [1, 2], values: [3] })).toEqual({ steps: [1, 2], values: [3, null] });
  });
});

describe("decodeHistogram", () => {
  it("decodes edges and counts, pads ragged rows, zeroes bad counts", () => {
    const h = decodeHistogram({ edges: [0, 0.5, 1], steps: [0, 1], counts: [[3, "NaN"], [5]] });
    expect(h.edges).toEqual([0, 0.5, 1]);
    expect(h.counts).toEqual([[3, 0], [5, 0]]);
  });
  it("empty on malformed input", () => {
    expect(decodeHistogram(null)).toEqual({ edges: [], steps: [], counts: [] });
  });
});

describe("decodeMatrix", () => {
  it("keeps nulls, decodes strings, pads to the shape", () => {
    const m = decodeMatrix([[1, null, "Infinity"], [2]], 3, 3);
    expect(m[0]).toEqual([1, null, Infinity]);
    expect(m[1]).toEqual([2, null, null]);
    expect(m[2]).toEqual([null, null, null]);
  });
});
