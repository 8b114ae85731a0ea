import { describe, expect, it } from "vitest";
import { lineOption, logRange, logTickStep } from "../src/charts";
import { lineData } from "../src/shape";

const series = (values: number[]) => [
  { name: "s", color: "#1e88e5", data: lineData({ steps: values.map((_, i) => i), values }, { log: true }) },
];

describe("log axes", () => {
  it("end on a tick of the axis, so no end label sits beside a tick label", () => {
    // an exploding spread: 0.1 .. 4e31 is 33 decades, ticked every 10
    expect(logTickStep(33)).toBe(10);
    expect(logRange(series([0.1, 1, 4e31]), [])).toEqual([1e-10, 1e40]);
    expect(logTickStep(6)).toBe(1);
    expect(logRange(series([2e-6, 3]), [])).toEqual([1e-6, 10]);
  });
});

describe("linear axes", () => {
  it("label no end padded past a tick (it would sit on the tick's label)", () => {
    const axis = (yMin: number, yMax: number) =>
      (lineOption({ series: series([0, 1]), yMin, yMax }) as { yAxis: { axisLabel: Record<string, unknown> } }).yAxis.axisLabel;
    expect(axis(-0.05, 1.05)).toMatchObject({ showMinLabel: false, showMaxLabel: false });
    expect(axis(0, 1).showMinLabel).toBeUndefined();
    expect(axis(0, 1).showMaxLabel).toBeUndefined();
  });
});
