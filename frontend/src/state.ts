// Application state shared by the views.

import type { Finding, RunInfo } from "./types";

export type Tab = "overview" | "collapse" | "gradients" | "train_mode" | "compare";

/** What the Compare view compares (see compareQuery in compare.ts). */
export interface CompareSettings {
  tag: string;
  /** regex over run names whose first capture group names the group; "" = by recorded configuration */
  group: string;
  /** regex the compared runs match; "" = every run */
  run: string;
  final: "last" | "best" | "mean_last";
  /** records averaged by final = mean_last */
  k: number;
  band: "ci" | "sd" | "se" | "minmax";
  /** draw every run beside its group's band */
  showRuns: boolean;
}

export interface Focus {
  run: string;
  kind: string;
  layer: string | null;
  first: number | null;
  last: number | null;
  finding: Finding;
}

export interface State {
  runs: RunInfo[];
  selected: Set<string>;
  tab: Tab;
  focus: Focus | null;
  /** chosen step of the per-layer gradient profile (null = last step) */
  gradStep: number | null;
  /** chosen variable of the log10|g| histogram (null = focus layer or first kernel) */
  gradVariable: string | null;
  /** `width` query parameter for series routes */
  width: number;
  filter: string;
  /** the Compare view's choices (null: not opened yet; guessed from the runs) */
  compare: CompareSettings | null;
  /** overview entries unfolded to their evidence */
  expanded: Set<string>;
}

export function newState(): State {
  return {
    runs: [],
    selected: new Set(),
    tab: "overview",
    focus: null,
    gradStep: null,
    gradVariable: null,
    width: 500,
    filter: "",
    compare: null,
    expanded: new Set(),
  };
}

/** Selected runs in listing order. */
export function selectedRuns(state: State): RunInfo[] {
  return state.runs.filter((r) => state.selected.has(r.run));
}

/** Initial selection: everything when few runs, else the unhealthy ones (or the first two). */
export function defaultSelection(runs: RunInfo[]): Set<string> {
  if (runs.length <= 6) return new Set(runs.map((r) => r.run));
  const bad = runs.filter((r) => r.status === "unhealthy").slice(0, 6);
  return new Set((bad.length ? bad : runs.slice(0, 2)).map((r) => r.run));
}
