import { describe, expect, it } from "vitest";
import { escapeHtml, evidenceText, formatExact, formatPercent, formatShort, isNonFiniteRaw, stepRangeText, valueHtml } from "../src/format";

describe("format", () => {
  it("escapes HTML", () => {
    expect(escapeHtml("<img src=x onerror=alert(1)>")).toBe("&lt;img src=x onerror=alert(1)&gt;");
    expect(escapeHtml(`a&"'\``)).toBe("a&amp;&quot;&#39;&#96;");
  });
  it("formats exact and short values", () => {
    expect(formatExact(1.2e-8)).toBe("1.2e-8");
    expect(formatExact(0.123456789)).toBe("0.123457");
    expect(formatExact(42)).toBe("42");
    expect(formatExact(NaN)).toBe("NaN");
    expect(formatExact(-Infinity)).toBe("-Infinity");
    expect(formatExact(null)).toBe("–");
    expect(formatShort(1e-6)).toBe("1e-6");
    expect(formatShort(0.5)).toBe("0.5");
    expect(formatPercent(0.991)).toBe("99.1%");
  });
  it("marks non-finite values red in tooltips, escaped otherwise", () => {
    expect(valueHtml(NaN)).toContain(`class="nonfinite"`);
    expect(valueHtml(NaN)).toContain("NaN");
    expect(valueHtml(1)).toBe("<b>1</b>");
  });
  it("renders evidence values", () => {
    expect(evidenceText("Infinity")).toBe("Infinity");
    expect(isNonFiniteRaw("NaN")).toBe(true);
    expect(isNonFiniteRaw("relu")).toBe(false);
    expect(evidenceText([1, 2])).toBe("[1, 2]");
    expect(evidenceText(true)).toBe("true");
    expect(evidenceText({ a: 1 })).toBe('{"a":1}');
  });
  it("step ranges", () => {
    expect(stepRangeText(3, 3)).toBe("step 3");
    expect(stepRangeText(3, 9)).toBe("steps 3–9");
    expect(stepRangeText(null, null)).toBe("");
  });
});
