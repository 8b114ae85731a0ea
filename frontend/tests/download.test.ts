import { describe, expect, it } from "vitest";
import { findingRows, optionRows, toCsv, toJson } from "../src/download";
import { lineOption, heatmapOption } from "../src/charts";
import { lineData } from "../src/shape";
import type { RunInfo } from "../src/types";

describe("downloads", () => {
  it("writes CSV with every key as a column, quoting what needs it", () => {
    const csv = toCsv([
      { run: "a,b", value: NaN },
      { run: 'say "hi"', value: 1, extra: { k: 1 } },
    ]);
    expect(csv).toBe('run,value,extra\n"a,b",NaN,\n"say ""hi""",1,"{""k"":1}"\n');
  });

  it("keeps non-finite numbers in JSON as the routes do", () => {
    expect(JSON.parse(toJson({ v: [NaN, -Infinity, 2] }))).toEqual({ v: ["NaN", "-Infinity", 2] });
  });

  it("lists every finding with its run, root cause and evidence", () => {
    const runs = [
      {
        run: "r/train",
        status: "unhealthy",
        findings: [
          { kind: "tied_predictions", severity: "error", layer: null, first_step: 1, last_step: 5, evidence: { tie_fraction: 1 }, message: "m", suggestion: "s", caused_by: "output_activation_mismatch" },
        ],
      },
      { run: "ok", status: "healthy", findings: [] },
    ] as unknown as RunInfo[];
    const csv = toCsv(findingRows(runs)).split("\n");
    expect(csv[0]).toBe("run,status,severity,kind,layer,first_step,last_step,caused_by,message,suggestion,evidence");
    expect(csv[1]).toBe('r/train,unhealthy,error,tied_predictions,,1,5,output_activation_mismatch,m,s,"{""tie_fraction"":1}"');
    expect(csv.length).toBe(3);
  });

  it("reads back a line chart's recorded values (NaN kept, reference lines left out)", () => {
    const series = { steps: [0, 1, 2], values: [0.5, NaN, 1] };
    const option = lineOption({
      series: [{ name: "r/train", color: "#000", data: lineData(series) }],
      refLines: [{ value: 1, label: "uniform" }],
    });
    expect(optionRows(option as Record<string, unknown>, null)).toEqual([
      { series: "r/train", step: 0, value: 0.5 },
      { series: "r/train", step: 1, value: NaN },
      { series: "r/train", step: 2, value: 1 },
    ]);
  });

  it("reads back a heatmap's cells on their step and bin labels", () => {
    const option = heatmapOption({
      xSteps: [10, 20],
      yLabels: ["dense/kernel", "dense/bias"],
      cells: [[0, 0, 1.5, 0], [1, 1, -2, 0]],
      min: -2,
      max: 2,
      cellTooltip: () => "",
    });
    expect(optionRows(option as Record<string, unknown>, "r/train")).toEqual([
      { run: "r/train", series: "value", step: "10", bin: "dense/kernel", value: 1.5 },
      { run: "r/train", series: "value", step: "20", bin: "dense/bias", value: -2 },
    ]);
  });
});
