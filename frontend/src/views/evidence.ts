// A finding's evidence: scalars as a compact grid, nested objects (per
// layer...) as small folded tables.

import { el } from "../dom";
import { evidenceText, humanize, isNonFiniteRaw } from "../format";
import { shortNames } from "../shape";

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

/** Scalar evidence as a compact grid; nested objects (per layer...) as small folded tables. */
export function evidenceView(evidence: Record<string, unknown>): HTMLElement | null {
  const entries = Object.entries(evidence);
  if (entries.length === 0) return null;
  const flat = entries.filter(([, v]) => !isPlainObject(v));
  const nested = entries.filter(([, v]) => isPlainObject(v)) as [string, Record<string, unknown>][];
  const box = el("div", { class: "evidence" });
  if (flat.length) {
    const grid = el("div", { class: "ev-grid" });
    for (const [k, v] of flat) {
      const text = evidenceText(v);
      grid.appendChild(
        el(
          "div",
          { class: `ev${text.length + k.length > 30 ? " long" : ""}` },
          el("span", { class: "k" }, humanize(k)),
          el(
            "span",
            { class: `v${isNonFiniteRaw(v) ? " nonfinite" : ""}`, title: typeof v === "number" ? String(v) : text },
            text,
          ),
        ),
      );
    }
    box.appendChild(grid);
  }
  for (const [k, obj] of nested) {
    const keys = Object.keys(obj);
    const short = shortNames(keys);
    const inner = keys.every((x) => isPlainObject(obj[x]));
    const cols = inner ? [...new Set(keys.flatMap((x) => Object.keys(obj[x] as Record<string, unknown>)))] : [];
    const table = el("table", { class: "ev-table" });
    if (inner) table.appendChild(el("tr", {}, el("th", {}, ""), ...cols.map((c) => el("th", {}, humanize(c)))));
    keys.forEach((key, i) => {
      const v = obj[key];
      const cells = inner
        ? cols.map((c) => {
            const x = (v as Record<string, unknown>)[c];
            return el("td", { class: isNonFiniteRaw(x) ? "nonfinite" : undefined }, evidenceText(x));
          })
        : [el("td", { class: isNonFiniteRaw(v) ? "nonfinite" : undefined }, evidenceText(v))];
      table.appendChild(el("tr", {}, el("td", { class: "mono", title: key }, short[i]), ...cells));
    });
    const details = el("details", { class: "ev-details" }, el("summary", {}, `${humanize(k)} (${keys.length})`), table);
    // a click inside the table must not open the dashboard
    details.addEventListener("click", (e) => e.stopPropagation());
    box.appendChild(details);
  }
  return box;
}
