// The view in the URL: tab, selected runs, focused finding, its step range,
// and the gradient layer and step.
//
// Where: the plugin lives in TensorBoard's iframe data/plugin_entry.html,
// which TensorBoard recreates (without any hash or query) when its page is
// reloaded, so the iframe's own URL cannot keep the view. The top window's
// hash is TensorBoard's ("#health"); TensorBoard's own convention for plugin
// state there is "#health&p.health.<key>=<value>" (the keys its plugin API
// GetURLPluginData hands to a plugin), and it keeps such keys on load and
// reload. The iframe is same-origin and not sandboxed, so it writes them with
// the top window's history.pushState / replaceState (no hashchange: TensorBoard
// does not react) and follows Back / Forward through that window's popstate;
// the iframe itself stays alive across them. Opened on its own (no parent),
// the plugin keeps the same keys in its own hash.

import { decodeStep } from "./decode";
import { defaultSelection, type State, type Tab } from "./state";

export const TABS: Tab[] = ["overview", "collapse", "gradients", "train_mode", "compare"];
const PREFIX = "p.health.";
const PLUGIN = "health";

/** The view as the URL holds it (null / empty: not set). */
export interface UrlView {
  tab: Tab;
  runs: string[] | null;
  /** focused finding: run, kind, layer */
  focus: { run: string; kind: string; layer: string | null } | null;
  /** step range of the focus */
  steps: [number | null, number | null] | null;
  /** the gradients view's variable and step */
  layer: string | null;
  step: number | null;
}

const enc = encodeURIComponent;

function decode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

function num(v: string | undefined): number | null {
  if (v === undefined || v === "") return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** Our keys of a hash (without the prefix), their values still encoded. */
function ownKeys(hash: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of hash.replace(/^#/, "").split("&")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const key = decode(part.slice(0, i));
    if (key.startsWith(PREFIX)) out.set(key.slice(PREFIX.length), part.slice(i + 1));
  }
  return out;
}

export function parseView(hash: string): UrlView {
  const k = ownKeys(hash);
  const get = (key: string) => (k.has(key) ? decode(k.get(key) as string) : undefined);
  const tab = get("tab") as Tab | undefined;
  const runs = k.get("runs");
  const run = get("run");
  const kind = get("kind");
  const steps = get("steps")?.split("..");
  return {
    tab: tab && TABS.includes(tab) ? tab : "overview",
    // each name encoded on its own, so that "," separates them
    runs: runs === undefined ? null : runs.split(",").filter(Boolean).map(decode),
    focus: run !== undefined && kind !== undefined ? { run, kind, layer: get("flayer") ?? null } : null,
    steps: steps && steps.length === 2 ? [num(steps[0]), num(steps[1])] : null,
    layer: get("layer") ?? null,
    step: num(get("step")),
  };
}

/** `hash` with our keys replaced by `view`'s; TensorBoard's own parts kept in place. */
export function formatView(hash: string, view: UrlView): string {
  const kept = hash
    .replace(/^#/, "")
    .split("&")
    .filter((p) => p && !decode(p.slice(0, Math.max(0, p.indexOf("=")))).startsWith(PREFIX));
  const own: [string, string | null][] = [
    ["tab", view.tab === "overview" ? null : enc(view.tab)],
    ["runs", view.runs ? view.runs.map(enc).join(",") : null],
    ["run", view.focus ? enc(view.focus.run) : null],
    ["kind", view.focus ? enc(view.focus.kind) : null],
    ["flayer", view.focus?.layer ? enc(view.focus.layer) : null],
    ["steps", view.steps ? view.steps.map((s) => (s === null ? "" : String(s))).join("..") : null],
    ["layer", view.layer ? enc(view.layer) : null],
    ["step", view.step === null ? null : String(view.step)],
  ];
  const parts = [...kept, ...own.filter(([, v]) => v !== null).map(([key, v]) => `${PREFIX}${key}=${v}`)];
  return parts.length ? `#${parts.join("&")}` : "";
}

/** The window whose URL keeps the view: TensorBoard's top window, else our own. */
export function hostWindow(win: Window): Window {
  try {
    if (win.parent !== win && win.parent.location.href) return win.parent;
  } catch {
    // a cross-origin parent: keep the view in our own URL
  }
  return win;
}

/**
 * Whether the view may be written into `host`'s URL: our own window, or
 * TensorBoard's while its active dashboard is ours (the hash's first part).
 */
export function ownsHash(host: Window, win: Window): boolean {
  if (host === win) return true;
  const first = host.location.hash.replace(/^#/, "").split("&")[0];
  return first === PLUGIN || first === "";
}

export interface UrlBinding {
  read(): UrlView;
  /** writes `view` (a new history entry with `push`) when it differs from the URL's */
  write(view: UrlView, push: boolean): void;
  /** calls `f` on Back / Forward; stops when `alive` turns false */
  onChange(f: () => void, alive: () => boolean): void;
}

export function bindUrl(win: Window): UrlBinding {
  const host = hostWindow(win);
  return {
    read: () => parseView(host.location.hash),
    write: (view, push) => {
      if (!ownsHash(host, win)) return;
      // TensorBoard showing us by default (empty hash): name the dashboard
      const base = host === win || host.location.hash.length > 1 ? host.location.hash : `#${PLUGIN}`;
      const hash = formatView(base, view);
      if (hash === (host.location.hash === "#" ? "" : host.location.hash)) return;
      const url = host.location.href.replace(/#.*$/, "") + hash;
      if (push) host.history.pushState(host.history.state, "", url);
      else host.history.replaceState(host.history.state, "", url);
    },
    onChange: (f, alive) => {
      const listener = () => {
        if (!alive()) host.removeEventListener("popstate", listener);
        else if (ownsHash(host, win)) f();
      };
      host.addEventListener("popstate", listener);
    },
  };
}

/** The view of `state`, as the URL keeps it. */
export function viewOf(state: State): UrlView {
  const f = state.focus;
  const grad = state.tab === "gradients";
  return {
    tab: state.tab,
    runs: state.runs.filter((r) => state.selected.has(r.run)).map((r) => r.run),
    focus: f ? { run: f.run, kind: f.kind, layer: f.finding.layer ?? null } : null,
    steps: f && (f.first !== null || f.last !== null) ? [f.first, f.last] : null,
    layer: grad ? state.gradVariable : null,
    step: grad ? state.gradStep : null,
  };
}

/** Sets `state` (its runs loaded) to `view`; unknown runs and findings are dropped. */
export function applyView(state: State, view: UrlView): void {
  const names = new Set(state.runs.map((r) => r.run));
  const runs = (view.runs ?? []).filter((r) => names.has(r));
  state.selected = runs.length ? new Set(runs) : defaultSelection(state.runs);
  state.tab = view.tab;
  state.focus = null;
  const v = view.focus;
  const finding = v
    ? state.runs
        .find((r) => r.run === v.run)
        ?.findings.find((f) => f.kind === v.kind && (f.layer ?? null) === v.layer)
    : undefined;
  if (v && finding) {
    state.focus = {
      run: v.run,
      kind: v.kind,
      layer: finding.layer ?? null,
      first: view.steps ? view.steps[0] : decodeStep(finding.first_step),
      last: view.steps ? view.steps[1] : decodeStep(finding.last_step),
      finding,
    };
  }
  state.gradVariable = view.layer;
  state.gradStep = view.step;
}
