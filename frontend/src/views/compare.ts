// Compare view: groups of runs (configurations x seeds) compared on a scalar
// tag. Health first (findings that differ between the groups), then per
// group the mean over steps with a band, then the final values per group and
// per pair with the verdict. The grouping is a regex over run names (guessed
// from them, editable); the run selection on the left does not apply here.

import { api } from "../api";
import type { App } from "../app";
import { errorText } from "../app";
import {
  BAND_LABELS,
  bandSpecs,
  compareQuery,
  compareSettings,
  FINAL_LABELS,
  finalText,
  GROUP_COLUMNS,
  groupColor,
  groupRow,
  PAIR_COLUMNS,
  pairRow,
} from "../compare";
import { clear, el, emptyState, errorState, loadingState } from "../dom";
import { humanize } from "../format";
import { nameSpan } from "../names";
import type { CompareSettings } from "../state";
import type { CompareResponse } from "../types";
import { chartPanel, drawLines, runKey } from "./common";

export async function renderCompare(app: App, root: HTMLElement, isCurrent: () => boolean): Promise<void> {
  const loading = loadingState("Loading the scalar tags…");
  root.appendChild(loading);
  let tags: string[];
  let runs: string[];
  try {
    const listing = await api.scalarTags();
    tags = Array.isArray(listing?.tags) ? listing.tags.filter((t) => typeof t === "string") : [];
    runs = Array.isArray(listing?.runs) ? listing.runs.filter((r) => typeof r === "string") : [];
  } catch (e) {
    if (isCurrent()) loading.replaceWith(errorState(errorText(e), () => app.refresh()));
    return;
  }
  if (!isCurrent()) return;
  loading.remove();
  const settings = compareSettings(tags, runs, app.state.compare);
  if (settings === null) {
    root.appendChild(emptyState("No scalar tags to compare", "Log a metric (keras.callbacks.TensorBoard, tf.summary.scalar) in runs that differ in configuration and seed."));
    return;
  }
  app.state.compare = settings;
  root.appendChild(controls(app, settings, tags));
  const out = el("div", { testid: "compare-result" }, loadingState("Comparing the groups…"));
  root.appendChild(out);
  let result: CompareResponse;
  try {
    result = await api.compare(compareQuery(settings));
  } catch (e) {
    if (!isCurrent()) return;
    clear(out);
    out.appendChild(el("pre", { class: "state-message", testid: "compare-error", attrs: { role: "alert" } }, errorText(e)));
    return;
  }
  if (!isCurrent()) return;
  clear(out);
  showResult(out, result, settings);
}

/** The form: tag, grouping regex, run filter, final value, band, individual runs. */
function controls(app: App, s: CompareSettings, tags: string[]): HTMLElement {
  const tag = el("select", { testid: "compare-tag", attrs: { "aria-label": "Tag" } });
  const own = tags.filter((t) => !t.startsWith("health/"));
  const health = tags.filter((t) => t.startsWith("health/"));
  for (const [label, list] of [["Scalars", own], ["Health records (tb_plugin)", health]] as const) {
    if (list.length === 0) continue;
    const group = el("optgroup", { attrs: { label } });
    for (const t of list) group.appendChild(el("option", { attrs: { value: t } }, t));
    tag.appendChild(group);
  }
  tag.value = s.tag;
  const group = textInput("compare-group", "Group by", s.group, "regex; empty: by HParams or recorded configuration");
  const run = textInput("compare-run", "Runs", s.run, "regex (optional)");
  const final = select("compare-final", "Final value", FINAL_LABELS, s.final);
  const k = el("input", { testid: "compare-k", title: "K: the records averaged", attrs: { type: "number", min: "1", max: "999", "aria-label": "K" } });
  k.value = String(s.k);
  k.hidden = s.final !== "mean_last";
  const band = select("compare-band", "Band", BAND_LABELS, s.band);
  const showRuns = el("input", { testid: "compare-show-runs", attrs: { type: "checkbox", "aria-label": "Show every run" } });
  showRuns.checked = s.showRuns;
  const apply = () => {
    const kk = Math.floor(Number(k.value));
    app.state.compare = {
      tag: tag.value,
      group: group.value.trim(),
      run: run.value.trim(),
      final: final.value as CompareSettings["final"],
      k: Number.isFinite(kk) && kk >= 1 ? Math.min(kk, 999) : 3,
      band: band.value as CompareSettings["band"],
      showRuns: showRuns.checked,
    };
    app.refresh();
  };
  for (const input of [tag, group, run, final, k, band, showRuns]) input.addEventListener("change", apply);
  const field = (label: string, ...inputs: HTMLElement[]) => el("label", { class: "cmp-field" }, el("span", { class: "muted" }, label), ...inputs);
  return el(
    "div",
    { class: "panel cmp-controls", testid: "compare-controls" },
    field("Tag", tag),
    field("Group by (regex, first group names it)", group),
    field("Runs (regex)", run),
    field("Final value", el("span", { class: "cmp-row" }, final, k)),
    field("Band", band),
    el("label", { class: "cmp-field cmp-check" }, showRuns, "every run"),
    el("button", { class: "btn", on: { click: apply } }, "Compare"),
  );
}

function textInput(testid: string, label: string, value: string, placeholder: string): HTMLInputElement {
  const input = el("input", { class: "mono", testid, attrs: { type: "text", placeholder, "aria-label": label, spellcheck: "false" } });
  input.value = value;
  return input;
}

function select(testid: string, label: string, options: Record<string, string>, value: string): HTMLSelectElement {
  const sel = el("select", { testid, attrs: { "aria-label": label } });
  for (const [v, text] of Object.entries(options)) sel.appendChild(el("option", { attrs: { value: v } }, text));
  sel.value = value;
  return sel;
}

function showResult(out: HTMLElement, r: CompareResponse, s: CompareSettings): void {
  const groups = Array.isArray(r.groups) ? r.groups : [];
  const pairs = Array.isArray(r.pairs) ? r.pairs : [];
  out.appendChild(healthPanel(r));
  if (groups.length === 0) {
    out.appendChild(emptyState("No group to compare", (r.notes ?? []).join(" ")));
    return;
  }
  const bandLabel = BAND_LABELS[s.band];
  const p = chartPanel(
    "chart-compare-band",
    `${r.tag}: mean per group with its band (${bandLabel})`,
    "At each step a run counts with its last value at or before it, within its own first and last step; the band needs two runs.",
    { wide: true },
  );
  p.controls.appendChild(runKey(groups.map((g, i) => ({ label: g.label === g.name ? g.name : `${g.name}: ${g.label}`, color: groupColor(i) }))));
  out.appendChild(p.panel);
  drawLines(p, { series: bandSpecs(groups, bandLabel, s.showRuns), legend: false }, `No values of ${r.tag}.`);

  out.appendChild(
    table("compare-groups", `Final values: ${finalText(r)}`, GROUP_COLUMNS, groups.map((g, i) => {
      const row = tableRow(groupRow(g), { group: g.name });
      row.cells[0].prepend(el("span", { class: "key-swatch", style: { background: groupColor(i) } }));
      return [row];
    })),
  );
  if (pairs.length) {
    out.appendChild(
      table("compare-pairs", "Pairs of groups", PAIR_COLUMNS, pairs.map((pair) => {
        const verdict = el(
          "td",
          { attrs: { colspan: String(PAIR_COLUMNS.length) } },
          el("b", {}, "Verdict: "),
          pair.verdict?.text ?? "",
          pair.health_differs ? el("span", { class: "badge badge-error cmp-flag" }, "health differs: see above") : null,
        );
        const outcome = pair.verdict?.outcome ?? "";
        return [
          tableRow(pairRow(pair), { a: pair.a, b: pair.b }),
          el("tr", { class: `cmp-verdict cmp-${outcome}`, testid: "compare-verdict", data: { a: pair.a, b: pair.b, outcome } }, verdict),
        ];
      })),
    );
  }
  for (const note of r.notes ?? []) out.appendChild(el("div", { class: "legend-note", testid: "compare-note" }, `Note: ${note}`));
}

/** Health first: the finding kinds in a larger share of one group's runs than another's. */
function healthPanel(r: CompareResponse): HTMLElement {
  const h = r.health;
  const warnings = Array.isArray(h?.warnings) ? h.warnings : [];
  if (!h?.compared) {
    return el("div", { class: "legend-note", testid: "compare-health", data: { differs: "unknown" } },
      "No health records (tb_plugin.HealthCallback) for these runs: health not compared.");
  }
  if (warnings.length === 0) {
    return el("div", { class: "legend-note", testid: "compare-health", data: { differs: "false" } },
      "Health: the groups do not differ in health findings.");
  }
  const details = Object.entries(h.groups ?? {}).flatMap(([name, g]) =>
    Object.entries(g.kinds ?? {}).map(([kind, k]) =>
      el("li", {}, el("b", {}, `${name}: `), `${humanize(kind)} in ${k.runs} of ${g.runs} runs. `, el("span", { class: "muted" }, k.message))),
  );
  return el(
    "div",
    { class: "panel cmp-health", testid: "compare-health", data: { differs: "true" } },
    el("h3", {}, "Health first: the groups differ in health findings", el("span", { class: "muted h-note" }, "a difference below may be a bug, not the configuration")),
    el("ul", {}, ...warnings.map((w) => el("li", { testid: "compare-health-warning" }, w))),
    el("ul", { class: "cmp-health-details" }, ...details),
  );
}

function tableRow(cells: string[], data: Record<string, string>): HTMLTableRowElement {
  return el("tr", { data }, ...cells.map((c, i) => i === 0 ? el("td", { class: "run-cell" }, nameSpan(c)) : el("td", {}, c)));
}

function table(testid: string, title: string, columns: [string, string][], rows: HTMLTableRowElement[][]): HTMLElement {
  return el(
    "div",
    { class: "panel summary", testid },
    el("h3", {}, title),
    el(
      "div",
      { class: "summary-scroll" },
      el("table", { class: "summary-table" },
        el("tr", {}, ...columns.map(([t, help]) => el("th", { title: help || undefined }, t))),
        ...rows.flat()),
    ),
  );
}
