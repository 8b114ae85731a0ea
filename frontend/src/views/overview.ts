// Overview: every run with its status, and the findings as cards.

import type { App } from "../app";
import { badgeClass, statusText } from "../app";
import { decodeStep } from "../decode";
import { el } from "../dom";
import { evidenceText, humanize, isNonFiniteRaw, stepRangeText } from "../format";
import { dashboardFor, dashboardTitle, shortNames, sortFindings } from "../shape";
import { badgeOf } from "./common";
import type { Finding, RunInfo } from "../types";

export function renderOverview(app: App, root: HTMLElement): void {
  const { state } = app;
  const wrap = el("div", { testid: "overview" });
  root.appendChild(wrap);

  const total = state.runs.reduce((a, r) => a + r.findings.length, 0);
  const unhealthy = state.runs.filter((r) => r.status === "unhealthy").length;
  const errored = state.runs.filter((r) => r.error).length;

  // ---- findings first: they are what the tab is for
  const panel = el(
    "div",
    { class: "panel" },
    el(
      "h3",
      {},
      `Findings (${total})`,
      el(
        "span",
        { class: "muted h-note" },
        total
          ? `in ${unhealthy} of ${state.runs.length} runs · click a finding to open its dashboard at its steps`
          : `${state.runs.length} runs checked`,
      ),
    ),
  );
  wrap.appendChild(panel);
  if (total === 0) {
    panel.appendChild(
      el(
        "div",
        { class: "na", style: { padding: "14px" } },
        "No silent failures detected in any run. Select runs on the left and open the dashboards to inspect the statistics.",
      ),
    );
  } else {
    const cards = el("div", { class: "cards" });
    for (const r of state.runs) {
      for (const f of sortFindings(r.findings)) cards.appendChild(findingCard(app, r.run, f));
    }
    panel.appendChild(cards);
  }

  // ---- runs table
  const table = el(
    "table",
    { class: "runs-table" },
    el(
      "thead",
      {},
      el("tr", {}, el("th", {}, "Run"), el("th", {}, "Status"), el("th", {}, "Findings"), el("th", {}, "Records")),
    ),
  );
  const tbody = el("tbody", {});
  for (const r of state.runs) tbody.appendChild(runRow(app, r));
  table.appendChild(tbody);
  wrap.appendChild(
    el(
      "div",
      { class: "panel" },
      el(
        "h3",
        {},
        `Runs (${state.runs.length})`,
        el(
          "span",
          { class: "muted h-note" },
          unhealthy ? `${unhealthy} unhealthy` : "no problems detected",
          errored ? ` · ${errored} could not be read` : "",
          " · click a run to open its dashboard",
        ),
      ),
      table,
    ),
  );
}

function runRow(app: App, r: RunInfo): HTMLElement {
  const errors = r.findings.filter((f) => f.severity === "error").length;
  const warnings = r.findings.filter((f) => f.severity === "warning").length;
  const records: string[] = [];
  for (const p of r.predictions) {
    const k = typeof p.num_classes === "number" && p.task === "multiclass" ? `, K=${p.num_classes}` : "";
    records.push(`${p.name} (${p.task}${k})`);
  }
  for (const g of r.gradients) records.push(`${g.name} (${g.variables.length} variables)`);
  if (r.has_manifest) records.push("model manifest");
  const row = el(
    "tr",
    {
      class: "run-row",
      testid: "run-row",
      data: { run: r.run, status: r.status },
      title: "Open this run's dashboard",
      attrs: { tabindex: "0" },
    },
    el(
      "td",
      {},
      el("span", { class: "runname" }, r.run),
      r.error ? el("div", { class: "run-error", testid: "run-error" }, r.error) : null,
    ),
    el("td", {}, el("span", { class: `badge badge-${badgeClass(r.status)}` }, statusText(r.status))),
    el(
      "td",
      {},
      r.findings.length === 0
        ? el("span", { class: "muted" }, "none")
        : el(
            "span",
            {},
            errors ? el("span", { class: "badge badge-error", style: { marginRight: "4px" } }, `${errors} error${errors > 1 ? "s" : ""}`) : null,
            warnings ? el("span", { class: "badge badge-warning" }, `${warnings} warning${warnings > 1 ? "s" : ""}`) : null,
          ),
    ),
    el("td", { class: "muted" }, records.length ? records.join(" · ") : "–"),
  );
  const open = () => app.openRun(r);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (e) => {
    if ((e as KeyboardEvent).key === "Enter") open();
  });
  return row;
}

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

export function findingCard(app: App, run: string, f: Finding): HTMLElement {
  const first = decodeStep(f.first_step);
  const last = decodeStep(f.last_step);
  const info = app.state.runs.find((r) => r.run === run);
  const dash = dashboardFor(String(f.kind), f.evidence, f.layer, info?.gradients.flatMap((g) => g.variables) ?? []);
  const sev = badgeOf(f.severity);
  const evidence = f.evidence && typeof f.evidence === "object" && !Array.isArray(f.evidence) ? f.evidence : {};
  const card = el(
    "div",
    {
      class: `card sev-${sev}`,
      testid: "finding-card",
      data: { kind: String(f.kind), run, severity: String(f.severity), dashboard: dash },
      attrs: { tabindex: "0", role: "button" },
      title: `Open the ${dashboardTitle(dash)} dashboard at this step`,
    },
    el(
      "div",
      { class: "card-head" },
      el("span", { class: `badge badge-${sev}` }, String(f.severity ?? "warning")),
      el("span", { class: "card-kind" }, humanize(String(f.kind))),
    ),
    el(
      "div",
      { class: "card-meta" },
      "run ",
      el("span", { class: "mono" }, run),
      f.layer ? " · layer " : null,
      f.layer ? el("span", { class: "mono" }, String(f.layer)) : null,
      first !== null || last !== null ? ` · ${stepRangeText(first, last)}` : null,
    ),
    el("div", { class: "card-msg" }, String(f.message ?? "")),
    evidenceView(evidence),
    f.suggestion ? el("div", { class: "card-suggest" }, el("b", {}, "Suggestion: "), String(f.suggestion)) : null,
    el("div", { class: "card-open" }, `Open ${dashboardTitle(dash)} dashboard →`),
  );
  const open = () => app.openFinding(run, f);
  card.addEventListener("click", open);
  card.addEventListener("keydown", (e) => {
    if ((e as KeyboardEvent).key === "Enter" || (e as KeyboardEvent).key === " ") {
      e.preventDefault();
      open();
    }
  });
  return card;
}
