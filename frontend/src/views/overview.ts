// Overview: every run with its status, and the findings as cards.

import type { App } from "../app";
import { badgeClass, statusText } from "../app";
import { decodeStep } from "../decode";
import { el } from "../dom";
import { evidenceText, humanize, isNonFiniteRaw, stepRangeText } from "../format";
import { dashboardFor, sortFindings } from "../shape";
import { runColor } from "../state";
import type { Finding, RunInfo } from "../types";

export function renderOverview(app: App, root: HTMLElement): void {
  const { state } = app;
  const wrap = el("div", { testid: "overview" });
  root.appendChild(wrap);

  const total = state.runs.reduce((a, r) => a + r.findings.length, 0);
  const unhealthy = state.runs.filter((r) => r.status === "unhealthy").length;

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
          { class: "muted", style: { fontWeight: "400", marginLeft: "8px" } },
          unhealthy ? `${unhealthy} unhealthy` : "no problems detected",
        ),
      ),
      table,
    ),
  );

  // ---- findings
  const panel = el("div", { class: "panel" }, el("h3", {}, `Findings (${total})`));
  wrap.appendChild(panel);
  if (total === 0) {
    panel.appendChild(
      el(
        "div",
        { class: "na", style: { padding: "14px" } },
        "No silent failures detected in any run. Select runs on the left and open the dashboards to inspect the statistics.",
      ),
    );
    return;
  }
  const cards = el("div", { class: "cards" });
  for (const r of state.runs) {
    for (const f of sortFindings(r.findings)) cards.appendChild(findingCard(app, r.run, f));
  }
  panel.appendChild(cards);
  void runColor;
}

function runRow(app: App, r: RunInfo): HTMLElement {
  const errors = r.findings.filter((f) => f.severity === "error").length;
  const warnings = r.findings.length - errors;
  const records: string[] = [];
  for (const p of r.predictions) {
    const k = typeof p.num_classes === "number" && p.task === "multiclass" ? `, K=${p.num_classes}` : "";
    records.push(`${p.name} (${p.task}${k})`);
  }
  for (const g of r.gradients) records.push(`${g.name} (${g.variables.length} variables)`);
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
      el("span", {
        class: "swatch",
        style: {
          display: "inline-block",
          width: "10px",
          height: "10px",
          borderRadius: "2px",
          marginRight: "8px",
          background: runColor(app.state, r.run),
        },
      }),
      el("span", { class: "runname" }, r.run),
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

export function findingCard(app: App, run: string, f: Finding): HTMLElement {
  const first = decodeStep(f.first_step);
  const last = decodeStep(f.last_step);
  const info = app.state.runs.find((r) => r.run === run);
  const dash = dashboardFor(String(f.kind), f.evidence, f.layer, info?.gradients.flatMap((g) => g.variables) ?? []);
  const sev = f.severity === "error" ? "error" : "warning";
  const evidence = f.evidence && typeof f.evidence === "object" ? Object.entries(f.evidence) : [];
  const evTable = el("table", { class: "evidence" });
  for (const [k, v] of evidence) {
    evTable.appendChild(
      el(
        "tr",
        {},
        el("td", {}, humanize(k)),
        el("td", { class: isNonFiniteRaw(v) ? "nonfinite" : undefined, title: typeof v === "number" ? String(v) : undefined }, evidenceText(v)),
      ),
    );
  }
  const card = el(
    "div",
    {
      class: `card sev-${sev}`,
      testid: "finding-card",
      data: { kind: String(f.kind), run, severity: String(f.severity), dashboard: dash },
      attrs: { tabindex: "0", role: "button" },
      title: `Open the ${dash === "gradients" ? "gradients" : "prediction collapse"} dashboard at this step`,
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
      first !== null || last !== null ? ` · since ${stepRangeText(first, last)}` : null,
    ),
    el("div", { class: "card-msg" }, String(f.message ?? "")),
    evidence.length ? evTable : null,
    f.suggestion ? el("div", { class: "card-suggest" }, el("b", {}, "Suggestion: "), String(f.suggestion)) : null,
    el("div", { class: "card-open" }, dash === "gradients" ? "Open gradients dashboard →" : "Open prediction collapse dashboard →"),
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
