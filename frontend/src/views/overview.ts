// Overview: the answer first. One row per run (train and validation merged)
// that needs attention, worst first, naming its root cause and the fix; a
// click unfolds the cause's evidence with the symptoms it explains. Healthy
// runs are folded away but counted.

import type { App } from "../app";
import { statusText } from "../app";
import { decodeStep } from "../decode";
import { el } from "../dom";
import { findingRows, findingsDocument, saveFile, toCsv, toJson } from "../download";
import { humanize, stepRangeText } from "../format";
import { dashboardFor, dashboardTitle } from "../shape";
import { triage, type Entry, type Issue } from "../triage";
import type { Finding } from "../types";
import { badgeOf } from "./common";
import { evidenceView } from "./evidence";
import { nameSpan } from "../names";

export function renderOverview(app: App, root: HTMLElement): void {
  const { state } = app;
  const entries = triage(state.runs);
  const sick = entries.filter((e) => e.sick);
  const rest = entries.filter((e) => !e.sick);
  const sickRuns = sick.reduce((a, e) => a + e.runs.length, 0);
  const wrap = el("div", { testid: "overview" });
  root.appendChild(wrap);

  const doc = root.ownerDocument;
  const actions = el(
    "span",
    { class: "ov-actions" },
    el(
      "button",
      {
        class: "btn",
        testid: "open-summary",
        title: "Every run with prediction records, side by side at its last recorded step",
        on: { click: () => app.openSummary() },
      },
      "All runs at the last step",
    ),
    el(
      "button",
      {
        class: "btn",
        testid: "download-findings-csv",
        title: "Every finding of every run, one row each",
        on: { click: () => saveFile(doc, "health-findings.csv", toCsv(findingRows(state.runs)), "text/csv") },
      },
      "Findings CSV",
    ),
    el(
      "button",
      {
        class: "btn",
        testid: "download-findings-json",
        title: "Every run with its status and findings",
        on: { click: () => saveFile(doc, "health-findings.json", toJson(findingsDocument(state.runs)), "application/json") },
      },
      "JSON",
    ),
  );
  const panel = el(
    "div",
    { class: "panel" },
    el(
      "h3",
      { class: "ov-head" },
      sick.length ? `Needs attention: ${sick.length} of ${entries.length} runs` : `All ${entries.length} runs look healthy`,
      el(
        "span",
        { class: "muted h-note" },
        sick.length
          ? `worst first · train and validation together (${sickRuns} of ${state.runs.length} runs) · click a row for the evidence`
          : "no silent failures detected",
      ),
      actions,
    ),
  );
  wrap.appendChild(panel);
  if (sick.length) {
    const table = el("table", { class: "triage", testid: "triage" });
    for (const e of sick) {
      const [row, detail] = entryRows(app, e);
      table.append(row, detail);
    }
    panel.appendChild(table);
  } else {
    panel.appendChild(
      el(
        "div",
        { class: "na", style: { padding: "14px" } },
        "Select runs on the left and open the dashboards to inspect the statistics.",
      ),
    );
  }
  if (rest.length) wrap.appendChild(restPanel(app, rest));
}

/** The run names of an entry after its key ("train + validation"). */
function splitNote(e: Entry): string {
  return e.runs.length > 1 ? e.runs.map((r) => r.run.slice(e.key.length + 1)).join(" + ") : "";
}

function entryRows(app: App, e: Entry): [HTMLElement, HTMLElement] {
  const { state } = app;
  const top = e.issues[0] ?? null;
  const errors = e.runs.filter((r) => r.error);
  const more = e.issues.length - 1;
  const cause = top
    ? el(
        "span",
        {},
        el("b", {}, humanize(String(top.finding.kind))),
        top.finding.layer ? el("span", { class: "mono muted" }, ` ${top.finding.layer}`) : null,
        top.symptoms.length ? el("span", { class: "muted" }, ` → ${top.symptoms.map((s) => humanize(String(s.finding.kind))).join(", ")}`) : null,
        more > 0 ? el("span", { class: "ov-more" }, ` +${more} more`) : null,
      )
    : el("span", { class: "muted" }, errors.length ? "could not be read" : statusText(e.runs[0].status));
  const fix = top?.finding.suggestion ?? errors[0]?.error ?? "";
  const open = state.expanded.has(e.key);
  const row = el(
    "tr",
    {
      class: `triage-row${open ? " open" : ""}`,
      testid: "run-entry",
      data: { entry: e.key, severity: e.severity ?? "", cause: top ? String(top.finding.kind) : "" },
      attrs: { tabindex: "0", "aria-expanded": String(open) },
      title: "Show the evidence, the symptoms and the fix",
    },
    el("td", { class: "sev" }, el("span", { class: `badge badge-${badgeOf(e.severity)}` }, e.severity ?? "")),
    el(
      "td",
      { class: "name", title: e.runs.map((r) => r.run).join("\n") },
      el("span", { class: "name-line" }, nameSpan(e.key, "mono"), el("span", { class: "muted" }, ` ${splitNote(e)}`)),
    ),
    el("td", { class: "cause", testid: "entry-cause" }, cause),
    el("td", { class: "fix", title: fix }, fix),
  );
  const detail = el(
    "tr",
    { class: "triage-detail", testid: "entry-detail", data: { entry: e.key } },
    el(
      "td",
      { attrs: { colspan: "4" } },
      ...errors.map((r) => el("div", { class: "run-error", testid: "run-error", data: { run: r.run } }, `${r.run}: ${r.error}`)),
      ...e.issues.map((i) => issueView(app, i)),
      el("button", { class: "btn", on: { click: () => app.openRun(e.runs[0]) } }, "Open the dashboards of these runs"),
    ),
  );
  detail.hidden = !open;
  const toggle = () => {
    const now = !state.expanded.has(e.key);
    if (now) state.expanded.add(e.key);
    else state.expanded.delete(e.key);
    row.classList.toggle("open", now);
    row.setAttribute("aria-expanded", String(now));
    detail.hidden = !now;
  };
  row.addEventListener("click", toggle);
  row.addEventListener("keydown", (ev) => {
    if ((ev as KeyboardEvent).key === "Enter") toggle();
  });
  return [row, detail];
}

/** "train, validation" when the finding is in several runs of the entry. */
function runsText(i: Issue): string {
  return i.runs.map((r) => r.slice(r.lastIndexOf("/") + 1)).join(", ");
}

/** A root cause: its message, evidence and fix, with the symptoms it explains under it. */
function issueView(app: App, i: Issue): HTMLElement {
  const card = findingCard(app, i.run, i.finding, "cause");
  card.querySelector(".card-meta")?.append(` · in ${runsText(i)}`);
  if (i.symptoms.length) {
    const list = el("div", { class: "symptoms" }, el("div", { class: "muted" }, "Explains, with the same fix:"));
    for (const s of i.symptoms) {
      const sc = findingCard(app, s.run, s.finding, "symptom");
      sc.setAttribute("data-caused-by", String(i.finding.kind));
      sc.querySelector(".card-meta")?.append(` · in ${runsText(s)}`);
      list.appendChild(sc);
    }
    card.insertBefore(list, card.querySelector(".card-suggest"));
  }
  return card;
}

/**
 * A finding as a card that opens its dashboard. A symptom shows its message
 * only: the fix is its cause's.
 */
function findingCard(app: App, run: string, f: Finding, role: "cause" | "symptom"): HTMLElement {
  const first = decodeStep(f.first_step);
  const last = decodeStep(f.last_step);
  const info = app.state.runs.find((r) => r.run === run);
  const dash = dashboardFor(String(f.kind), f.evidence, f.layer, info?.gradients.flatMap((g) => g.variables) ?? []);
  const sev = badgeOf(f.severity);
  const evidence = f.evidence && typeof f.evidence === "object" && !Array.isArray(f.evidence) ? f.evidence : {};
  const open = el("span", { class: "card-open" }, `Open ${dashboardTitle(dash)} dashboard →`);
  const card = el(
    "div",
    {
      class: `card sev-${sev} card-${role}`,
      testid: "finding-card",
      data: { kind: String(f.kind), run, severity: String(f.severity), dashboard: dash, role },
      attrs: { tabindex: "0", role: "button" },
      title: `Open the ${dashboardTitle(dash)} dashboard at this finding's steps`,
    },
    el(
      "div",
      { class: "card-head" },
      el("span", { class: `badge badge-${sev}` }, String(f.severity ?? "warning")),
      el("span", { class: "card-kind" }, humanize(String(f.kind))),
      el(
        "span",
        { class: "card-meta" },
        f.layer ? "layer " : null,
        f.layer ? el("span", { class: "mono" }, String(f.layer)) : null,
        first !== null || last !== null ? `${f.layer ? " · " : ""}${stepRangeText(first, last)}` : null,
      ),
      open,
    ),
    el("div", { class: "card-msg" }, String(f.message ?? "")),
    role === "cause" ? evidenceView(evidence) : null,
    role === "cause" && f.suggestion ? el("div", { class: "card-suggest" }, el("b", {}, "What to do: "), String(f.suggestion)) : null,
  );
  // a symptom's card sits inside its cause's: only the innermost opens
  card.addEventListener("click", (ev) => {
    ev.stopPropagation();
    app.openFinding(run, f);
  });
  card.addEventListener("keydown", (ev) => {
    if ((ev as KeyboardEvent).key === "Enter") {
      ev.stopPropagation();
      app.openFinding(run, f);
    }
  });
  return card;
}

/** The healthy runs and those without records, folded, with their count. */
function restPanel(app: App, rest: Entry[]): HTMLElement {
  const healthy = rest.filter((e) => e.runs.some((r) => r.status === "healthy"));
  const none = rest.length - healthy.length;
  const list = el("div", { class: "ov-rest" });
  for (const e of rest) {
    const info = e.issues.length ? ` · ${e.issues.map((i) => humanize(String(i.finding.kind))).join(", ")}` : "";
    list.appendChild(
      el(
        "button",
        {
          class: "ov-rest-run",
          testid: "healthy-entry",
          data: { entry: e.key },
          title: `Open ${e.runs.map((r) => r.run).join(", ")}`,
          on: { click: () => app.openRun(e.runs[0]) },
        },
        el("span", { class: `dot dot-${e.runs.some((r) => r.status === "healthy") ? "healthy" : "no_data"}` }),
        e.key,
        el("span", { class: "muted" }, info),
      ),
    );
  }
  return el(
    "details",
    { class: "panel ov-rest-panel", testid: "healthy-runs", data: { count: healthy.length } },
    el(
      "summary",
      {},
      `${healthy.length} healthy run${healthy.length === 1 ? "" : "s"}`,
      none ? ` · ${none} without health records` : "",
      el("span", { class: "muted h-note" }, "click to list them"),
    ),
    list,
  );
}
