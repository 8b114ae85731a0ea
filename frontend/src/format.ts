// Number and text formatting. escapeHtml is used for every string that ends
// up inside an ECharts tooltip (formatters return HTML).

import { decodeNumber } from "./decode";

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
  "`": "&#96;",
};

export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"'`]/g, (c) => HTML_ESCAPES[c]);
}

/** Text of a non-finite number as the server spells it. */
export function nonFiniteText(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  return v > 0 ? "Infinity" : "-Infinity";
}

/** Exact-ish value for tooltips: full precision up to 6 significant digits. */
export function formatExact(v: number | null | undefined): string {
  if (v === null || v === undefined) return "–";
  if (!Number.isFinite(v)) return nonFiniteText(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) return trimExp(v.toExponential(5));
  return String(Number(v.toPrecision(6)));
}

/** "1.20000e-8" -> "1.2e-8" */
function trimExp(s: string): string {
  return s.replace(/\.?0+e/, "e").replace("e+", "e");
}

/** Short value for axis labels and table cells. */
export function formatShort(v: number | null | undefined): string {
  if (v === null || v === undefined) return "–";
  if (!Number.isFinite(v)) return nonFiniteText(v);
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a < 1e-3 || a >= 1e5) return trimExp(v.toExponential(1));
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(3)));
}

export function formatPercent(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined) return "–";
  if (!Number.isFinite(v)) return nonFiniteText(v);
  return `${(v * 100).toFixed(digits)}%`;
}

/** Tooltip HTML for one value; non-finite values are shown in red. */
export function valueHtml(v: number | null | undefined, fmt = formatExact): string {
  if (v !== null && v !== undefined && !Number.isFinite(v)) {
    return `<b class="nonfinite">${escapeHtml(nonFiniteText(v))}</b>`;
  }
  return `<b>${escapeHtml(fmt(v))}</b>`;
}

/** Whether a raw evidence value is a non-finite number (number or string form). */
export function isNonFiniteRaw(v: unknown): boolean {
  if (typeof v !== "number" && typeof v !== "string") return false;
  const n = decodeNumber(v);
  return n !== null && !Number.isFinite(n);
}

/** Text of an evidence value (numbers, encoded non-finite strings, lists, objects). */
export function evidenceText(v: unknown): string {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return formatExact(v);
  if (typeof v === "string") {
    const n = decodeNumber(v);
    if (n !== null && !Number.isFinite(n)) return nonFiniteText(n);
    return v;
  }
  if (typeof v === "boolean") return v ? "true" : "false";
  if (Array.isArray(v)) {
    const parts = v.slice(0, 12).map(evidenceText);
    return `[${parts.join(", ")}${v.length > 12 ? `, … (${v.length} items)` : ""}]`;
  }
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === "number" ? Number(formatExact(x)) : x));
  } catch {
    return String(v);
  }
}

/** "step 12" or "steps 12–340". */
export function stepRangeText(first: number | null, last: number | null): string {
  if (first === null && last === null) return "";
  if (first === null || last === null || first === last) return `step ${first ?? last}`;
  return `steps ${first}–${last}`;
}

/** Humanises a snake_case identifier ("tie_tolerant_accuracy" -> "tie tolerant accuracy"). */
export function humanize(s: string): string {
  return s.replace(/_/g, " ");
}
