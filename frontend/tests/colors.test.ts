import { describe, expect, it } from "vitest";
import { RUN_COLORS, runColor } from "../src/colors";
import { newState } from "../src/state";
import { RED, ORANGE } from "../src/style";

const lin = (c: number) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const rgb = (h: string) => [1, 3, 5].map((i) => lin(parseInt(h.slice(i, i + 2), 16) / 255));
const luminance = (h: string) => {
  const [r, g, b] = rgb(h);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const contrast = (a: string, b: string) => {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
};
/** CIE L*a*b* (D65). */
const lab = (h: string) => {
  const [r, g, b] = rgb(h);
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const x = f((0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047);
  const y = f(0.2126 * r + 0.7152 * g + 0.0722 * b);
  const z = f((0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883);
  return [116 * y - 16, 500 * (x - y), 200 * (y - z)];
};
const distance = (a: string, b: string) => Math.hypot(...lab(a).map((v, i) => v - lab(b)[i]));

const runs = (names: string[]) =>
  names.map((run) => ({ run, status: "healthy", findings: [], predictions: [], gradients: [], has_manifest: false }));

describe("run colours", () => {
  it("has 20 colours far apart, readable on both themes, away from the marks' red and orange", () => {
    expect(new Set(RUN_COLORS).size).toBe(20);
    for (let i = 0; i < RUN_COLORS.length; i++) {
      expect(contrast(RUN_COLORS[i], "#ffffff")).toBeGreaterThan(2.2);
      expect(contrast(RUN_COLORS[i], "#303030")).toBeGreaterThan(2.0);
      expect(distance(RUN_COLORS[i], RED)).toBeGreaterThan(25);
      expect(distance(RUN_COLORS[i], ORANGE)).toBeGreaterThan(25);
      for (let j = 0; j < i; j++) expect(distance(RUN_COLORS[i], RUN_COLORS[j])).toBeGreaterThan(25);
    }
  });

  it("keeps a run's colour whatever else is selected", () => {
    const s = newState();
    s.runs = runs(["a", "b", "c", "d"]);
    s.selected = new Set(["b", "d"]);
    expect(runColor(s, "d")).toBe(RUN_COLORS[3]);
    s.selected = new Set(["a", "d"]);
    expect(runColor(s, "d")).toBe(RUN_COLORS[3]);
    expect(runColor(s, "a")).toBe(RUN_COLORS[0]);
    expect(runColor(s, "b")).toBe("transparent");
  });

  it("keeps the colours when a run is listed later, and gives 20 runs 20 colours", () => {
    const s = newState();
    const names = Array.from({ length: 20 }, (_, i) => `run${String(i).padStart(2, "0")}`);
    s.runs = runs(names.filter((n) => n !== "run05"));
    s.selected = new Set(names);
    const before = runColor(s, "run10");
    s.runs = runs(names); // run05 appears in the middle of the listing
    expect(runColor(s, "run10")).toBe(before);
    expect(new Set(names.map((n) => runColor(s, n))).size).toBe(20);
  });
});
