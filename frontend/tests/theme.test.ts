import { afterEach, describe, expect, it } from "vitest";
import { themed } from "../src/charts";
import { GREY } from "../src/style";
import { DARK_CLASS, followTheme, isDark, onThemeChange, storedDark } from "../src/theme";

const store = (theme: string) => localStorage.setItem("_tb_global_settings", JSON.stringify({ theme }));

afterEach(() => {
  localStorage.clear();
  document.documentElement.classList.remove(DARK_CLASS);
});

describe("theme outside TensorBoard", () => {
  it("reads TensorBoard's stored setting", () => {
    store("dark");
    expect(storedDark(window)).toBe(true);
    store("light");
    expect(storedDark(window)).toBe(false);
    store("browser_default");
    expect(storedDark(window)).toBe(null);
    localStorage.setItem("_tb_global_settings", "{not json");
    expect(storedDark(window)).toBe(null);
  });

  it("follows the stored setting as it changes, telling the listeners", () => {
    const seen: boolean[] = [];
    onThemeChange((d) => seen.push(d));
    store("dark");
    followTheme(document);
    expect(isDark()).toBe(true);
    store("light");
    window.dispatchEvent(new StorageEvent("storage"));
    expect(isDark()).toBe(false);
    expect(seen).toEqual([true, false]);
  });
});

describe("themed chart options", () => {
  it("swaps the light colours in the dark theme, leaving data and functions alone", () => {
    const f = () => "x";
    const option = { xAxis: { axisLabel: { color: GREY, formatter: f } }, series: [{ data: [[1, 2]], color: "#1e88e5" }] };
    expect(themed(option, false)).toBe(option);
    const dark = themed(option, true);
    expect(dark.xAxis.axisLabel.color).not.toBe(GREY);
    expect(dark.xAxis.axisLabel.formatter).toBe(f);
    expect(dark.series[0]).toEqual(option.series[0]);
    expect(option.xAxis.axisLabel.color).toBe(GREY);
  });
});
