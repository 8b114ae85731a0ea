// Triage of the run listing for the overview: a train run and its validation
// sibling become one entry; in an entry, each root cause carries the symptoms
// it explains; entries go by severity, healthy ones last.

import { companionRuns } from "./shape";
import type { Finding, RunInfo } from "./types";

/** Kinds that are consequences of another finding when one explains them. */
export const SYMPTOM_KINDS = new Set([
  "prediction_collapse",
  "tied_predictions",
  "class_collapse",
  "class_bias",
  "no_better_than_baseline",
]);

export type Severity = "error" | "warning" | "info";

export interface Issue {
  /** the finding shown: the first run's when several runs of the entry have it */
  finding: Finding;
  run: string;
  /** every run of the entry with this finding (same kind and layer) */
  runs: string[];
  /** the findings this one explains (empty for a symptom) */
  symptoms: Issue[];
}

export interface Entry {
  /** the runs' parent directory when train and validation are merged, else the run */
  key: string;
  runs: RunInfo[];
  /** worst severity of the findings; "error" for a run that could not be read */
  severity: Severity | null;
  /** root causes (and unexplained findings), worst first, each with its symptoms */
  issues: Issue[];
  sick: boolean;
}

const RANK: Record<string, number> = { error: 0, warning: 1, info: 2 };

export function severityRank(s: unknown): number {
  return RANK[String(s)] ?? 2;
}

function worst(a: Severity | null, b: Severity): Severity {
  return a === null || severityRank(b) < severityRank(a) ? b : a;
}

function asSeverity(s: unknown): Severity {
  return s === "error" || s === "warning" ? s : "info";
}

const sameFinding = (a: Finding, b: Finding) => a.kind === b.kind && (a.layer ?? null) === (b.layer ?? null);

/** Adds `f` of `run` to `list`, merged with an equal finding of another run. */
function addIssue(list: Issue[], run: string, f: Finding): Issue {
  const same = list.find((i) => sameFinding(i.finding, f));
  if (same) {
    if (!same.runs.includes(run)) same.runs.push(run);
    return same;
  }
  const issue = { finding: f, run, runs: [run], symptoms: [] };
  list.push(issue);
  return issue;
}

/**
 * The issue of `issues` that explains `f` of `run`: the server's caused_by
 * (the same run first); for a sibling's unlinked symptom, the cause that
 * explains the same kind in the entry, else the first cause with symptoms.
 */
function causeOf(issues: Issue[], run: string, f: Finding, anchor: boolean): Issue | null {
  const cause = f.caused_by;
  if (typeof cause === "string" && cause) {
    const ofKind = issues.filter((i) => i.finding.kind === cause);
    return ofKind.find((i) => i.runs.includes(run)) ?? ofKind[0] ?? null;
  }
  if (anchor || !SYMPTOM_KINDS.has(String(f.kind))) return null;
  return (
    issues.find((i) => i.symptoms.some((s) => s.finding.kind === f.kind)) ??
    issues.find((i) => i.symptoms.length > 0) ??
    null
  );
}

/** Root causes with their symptoms for the runs of one entry (anchor run first). */
export function entryIssues(runs: RunInfo[]): Issue[] {
  const issues: Issue[] = [];
  runs.forEach((r, ri) => {
    for (const f of r.findings) {
      const cause = causeOf(issues, r.run, f, ri === 0);
      addIssue(cause ? cause.symptoms : issues, r.run, f);
    }
  });
  // worst first; at equal severity a cause with symptoms before the others
  return issues
    .map((i, n) => ({ i, n }))
    .sort(
      (a, b) =>
        severityRank(a.i.finding.severity) - severityRank(b.i.finding.severity) ||
        Number(b.i.symptoms.length > 0) - Number(a.i.symptoms.length > 0) ||
        a.n - b.n,
    )
    .map((x) => x.i);
}

/** The run of an entry the others are merged into: train, or the run itself. */
function anchorOf(run: string, names: string[]): string {
  const leaf = run.slice(run.lastIndexOf("/") + 1);
  if (leaf === "train") return run;
  const train = companionRuns(run, names).find((c) => c.endsWith("/train"));
  return train ?? run;
}

/** The overview's entries: sick ones by severity (listing order otherwise), then the rest. */
export function triage(runs: RunInfo[]): Entry[] {
  const names = runs.map((r) => r.run);
  const byAnchor = new Map<string, RunInfo[]>();
  for (const r of runs) {
    const a = anchorOf(r.run, names);
    const members = byAnchor.get(a) ?? [];
    if (a === r.run) members.unshift(r);
    else members.push(r);
    byAnchor.set(a, members);
  }
  const entries: Entry[] = [...byAnchor.entries()].map(([anchor, members]) => {
    let severity: Severity | null = null;
    for (const r of members) {
      if (r.error) severity = worst(severity, "error");
      for (const f of r.findings) severity = worst(severity, asSeverity(f.severity));
    }
    const sick =
      members.some((r) => r.status === "unhealthy" || r.error) || (severity !== null && severity !== "info");
    return {
      key: members.length > 1 ? anchor.slice(0, anchor.lastIndexOf("/")) : anchor,
      runs: members,
      severity: sick ? worst(severity, "warning") : severity,
      issues: entryIssues(members),
      sick,
    };
  });
  const rank = (e: Entry) => (e.sick ? severityRank(e.severity) : 3);
  return entries
    .map((e, n) => ({ e, n }))
    .sort((a, b) => rank(a.e) - rank(b.e) || a.n - b.n)
    .map((x) => x.e);
}

/**
 * The root cause behind `f` of `run` as the overview shows it (null when `f`
 * is a root cause itself): where a dashboard opened on a symptom takes its
 * suggestion from.
 */
export function rootCause(runs: RunInfo[], run: string, f: Finding): Issue | null {
  const entry = triage(runs).find((e) => e.runs.some((r) => r.run === run));
  for (const issue of entry?.issues ?? []) {
    if (issue.symptoms.some((s) => s.runs.includes(run) && sameFinding(s.finding, f))) return issue;
  }
  return null;
}
