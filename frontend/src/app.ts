// The Health plugin UI: run selector, tabs, and the views.

import { api, ApiError, clearCache } from "./api";
import { disposeAll } from "./charts";
import { decodeStep } from "./decode";
import { clear, el, emptyState, errorState, loadingState } from "./dom";
import { companionRuns, dashboardFor, requestWidth } from "./shape";
import { runColor } from "./colors";
import { defaultSelection, newState, type State, type Tab } from "./state";
import { injectStyle } from "./style";
import { injectTriageStyle } from "./triage_style";
import { applyView, bindUrl, viewOf } from "./url_state";
import type { Finding, RunInfo, RunsResponse } from "./types";
import { renderCollapse } from "./views/collapse";
import { renderCompare } from "./views/compare";
import { renderGradients } from "./views/gradients";
import { renderOverview } from "./views/overview";
import { renderTrainMode } from "./views/train_mode";

export interface App {
  state: State;
  /** Re-renders the side bar and the current tab. */
  refresh(): void;
  /** Shows `tab` (with the state as it is now) as a new history entry. */
  setTab(tab: Tab): void;
  openFinding(run: string, f: Finding): void;
  openRun(run: RunInfo): void;
  /** Every run with prediction records at its last recorded step (the collapse summary). */
  openSummary(): void;
  content: HTMLElement;
}

/** Auto-reload period: TensorBoard's own default reload interval. */
export const AUTO_RELOAD_MS = 30_000;

export interface AppOptions {
  /** period of the auto-reload of the run listing; 0: none */
  autoReloadMs?: number;
}

/**
 * What changes in the run listing when a run gets new records (or a new
 * diagnosis): the auto-reload re-renders only when this does.
 */
export function runsFingerprint(runs: RunInfo[]): string {
  return JSON.stringify(
    runs.map((r) => [r.run, r.last_step ?? null, r.last_wall_time ?? null, r.status, r.findings.length, r.error ?? null]),
  );
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export function createApp(root: HTMLElement, options: AppOptions = {}): App {
  injectStyle(root.ownerDocument);
  injectTriageStyle(root.ownerDocument);
  const state = newState();
  const win = root.ownerDocument.defaultView;
  const url = win ? bindUrl(win) : null;
  const side = el("div", { class: "hp-side" });
  const tabs: Record<Tab, HTMLButtonElement> = {
    overview: el("button", { class: "hp-tab", testid: "tab-overview" }, "Overview"),
    collapse: el("button", { class: "hp-tab", testid: "tab-collapse" }, "Prediction collapse"),
    gradients: el("button", { class: "hp-tab", testid: "tab-gradients" }, "Gradients"),
    train_mode: el("button", { class: "hp-tab", testid: "tab-train-mode" }, "Train mode"),
    compare: el("button", { class: "hp-tab", testid: "tab-compare" }, "Compare"),
  };
  const reload = el("button", { class: "btn", title: "Reload data from the server" }, "Reload");
  const autoReloadMs = options.autoReloadMs ?? AUTO_RELOAD_MS;
  const auto = el("input", { attrs: { type: "checkbox", "aria-label": "Auto-reload" }, testid: "auto-reload" });
  auto.checked = autoReloadMs > 0;
  const autoLabel = el(
    "label",
    { class: "hp-auto", title: `Look for new records every ${Math.round(autoReloadMs / 1000)} s; re-render when a run has some` },
    auto,
    "Auto-reload",
  );
  const bar = el(
    "div",
    { class: "hp-bar" },
    tabs.overview,
    tabs.collapse,
    tabs.gradients,
    tabs.train_mode,
    tabs.compare,
    el("span", { class: "spacer" }),
    autoReloadMs > 0 ? autoLabel : null,
    reload,
  );
  const content = el("div", { class: "hp-content" });
  const main = el("div", { class: "hp-main" }, bar, content);
  clear(root);
  root.appendChild(el("div", { class: "hp-root" }, side, main));

  let loaded = false;
  let viewRead = false;
  let renderToken = 0;
  /** Writes the view into the URL: a new history entry with `push`. */
  const saveView = (push: boolean) => {
    if (loaded) url?.write(viewOf(state), push);
  };

  const app: App = {
    state,
    content,
    refresh: () => {
      renderSide();
      void renderTab();
    },
    setTab: (tab) => {
      state.tab = tab;
      saveView(true);
      app.refresh();
    },
    openFinding: (run, f) => {
      const all = state.runs.map((r) => r.run);
      state.selected = new Set([run, ...companionRuns(run, all)]);
      state.focus = {
        run,
        kind: f.kind,
        layer: f.layer ?? null,
        first: decodeStep(f.first_step),
        last: decodeStep(f.last_step),
        finding: f,
      };
      const info = state.runs.find((r) => r.run === run);
      const dash = dashboardFor(String(f.kind), f.evidence, f.layer, info?.gradients.flatMap((g) => g.variables) ?? []);
      if (dash === "gradients") {
        state.gradStep = state.focus.first;
        state.gradVariable = null; // resolved from focus.layer by the view
      }
      app.setTab(dash);
    },
    openRun: (r) => {
      const all = state.runs.map((x) => x.run);
      state.selected = new Set([r.run, ...companionRuns(r.run, all)]);
      state.focus = null;
      app.setTab(r.predictions.length > 0 || r.gradients.length === 0 ? "collapse" : "gradients");
    },
    openSummary: () => {
      state.selected = new Set(state.runs.filter((r) => r.predictions.length > 0).map((r) => r.run));
      state.focus = null;
      app.setTab("collapse");
    },
  };

  for (const t of Object.keys(tabs) as Tab[]) {
    tabs[t].addEventListener("click", () => {
      if (t === "overview") state.focus = null;
      app.setTab(t);
    });
  }
  // Back / Forward: show the view the URL names now.
  url?.onChange(
    () => {
      if (!loaded) return;
      applyView(state, url.read());
      app.refresh();
    },
    () => root.isConnected,
  );
  // The dashboards change the gradient layer and step on clicks of their own:
  // the URL follows once their handlers have run.
  for (const type of ["click", "change"]) {
    content.addEventListener(type, () => setTimeout(() => saveView(false), 0));
  }
  reload.addEventListener("click", () => {
    clearCache();
    void load();
  });

  function renderSide(): void {
    clear(side);
    side.appendChild(el("h2", {}, "Runs"));
    if (!loaded || state.runs.length === 0) return;
    const filter = el("input", {
      class: "run-filter",
      attrs: { type: "search", placeholder: "Filter runs (regex)", "aria-label": "Filter runs" },
    });
    filter.value = state.filter;
    const list = el("div", { class: "hp-runs", testid: "run-selector" });
    const matcher = () => {
      try {
        return new RegExp(state.filter, "i");
      } catch {
        return null;
      }
    };
    const fill = () => {
      clear(list);
      const re = matcher();
      const shown = state.runs.filter((r) => !re || re.test(r.run));
      for (const g of groupRuns(shown.map((r) => r.run))) {
        const members = g.runs.map((name) => shown.find((r) => r.run === name) as RunInfo);
        if (g.parent === null) {
          for (const r of members) list.appendChild(runItem(r, r.run, false));
          continue;
        }
        const head = el("input", { attrs: { type: "checkbox", "aria-label": `Select every run of ${g.parent}` } });
        const n = members.filter((r) => state.selected.has(r.run)).length;
        head.checked = n === members.length;
        head.indeterminate = n > 0 && n < members.length;
        head.addEventListener("change", () => {
          for (const r of members) {
            if (head.checked) state.selected.add(r.run);
            else state.selected.delete(r.run);
          }
          fill();
          saveView(false);
          void renderTab();
        });
        const worst = members.some((r) => r.status === "unhealthy")
          ? "unhealthy"
          : members.every((r) => r.status === "healthy")
            ? "healthy"
            : "no_data";
        list.appendChild(
          el(
            "label",
            { class: "hp-group-head", title: g.parent, data: { group: g.parent } },
            head,
            el("span", { class: "name" }, g.parent),
            el("span", { class: `dot dot-${worst}`, title: statusText(worst) }),
          ),
        );
        for (const r of members) list.appendChild(runItem(r, g.leaf(r.run), true));
      }
    };
    const runItem = (r: RunInfo, label: string, child: boolean): HTMLElement => {
      const cb = el("input", { attrs: { type: "checkbox", "aria-label": `Select run ${r.run}` } });
      cb.checked = state.selected.has(r.run);
      cb.addEventListener("change", () => {
        if (cb.checked) state.selected.add(r.run);
        else state.selected.delete(r.run);
        fill(); // colours follow the selection
        saveView(false);
        void renderTab();
      });
      const color = runColor(state, r.run);
      return el(
        "label",
        { class: `hp-run${child ? " child" : ""}`, title: r.error ? `${r.run}\n${r.error}` : r.run, data: { run: r.run } },
        cb,
        el("span", { class: `swatch${cb.checked ? "" : " off"}`, style: { background: color } }),
        el("span", { class: "name" }, label),
        r.error ? el("span", { class: "badge badge-other", title: r.error }, "error") : null,
        el("span", { class: `badge badge-${badgeClass(r.status)}` }, statusText(r.status)),
      );
    };
    filter.addEventListener("input", () => {
      state.filter = filter.value;
      fill();
    });
    const all = el("button", { on: { click: () => setAll(true) } }, "Select all");
    const none = el("button", { on: { click: () => setAll(false) } }, "None");
    const setAll = (on: boolean) => {
      const re = matcher();
      for (const r of state.runs) {
        if (re && !re.test(r.run)) continue;
        if (on) state.selected.add(r.run);
        else state.selected.delete(r.run);
      }
      fill();
      saveView(false);
      void renderTab();
    };
    side.append(filter, el("div", { class: "run-actions" }, all, none), list);
    fill();
  }

  function markTabs(): void {
    for (const t of Object.keys(tabs) as Tab[]) {
      tabs[t].classList.toggle("active", t === state.tab);
      tabs[t].setAttribute("aria-selected", String(t === state.tab));
    }
  }

  function renderTab(): Promise<void> {
    const token = ++renderToken;
    markTabs();
    if (!loaded) return Promise.resolve();
    disposeAll();
    clear(content);
    content.scrollTop = 0;
    if (state.runs.length === 0) {
      content.appendChild(noDataState());
      return Promise.resolve();
    }
    const isCurrent = () => token === renderToken;
    if (state.tab === "overview") {
      renderOverview(app, content);
      return Promise.resolve();
    }
    if (state.tab === "train_mode") return renderTrainMode(app, content, isCurrent);
    if (state.tab === "compare") return renderCompare(app, content, isCurrent);
    return state.tab === "collapse" ? renderCollapse(app, content, isCurrent) : renderGradients(app, content, isCurrent);
  }

  async function load(): Promise<void> {
    loaded = false;
    disposeAll();
    clear(content);
    content.appendChild(loadingState("Loading runs…"));
    markTabs();
    renderSide();
    try {
      const runs = parseRuns(await api.runs());
      if (url && !viewRead) {
        // first load: the view the URL names (a deep link, a reload)
        state.runs = runs;
        applyView(state, url.read());
        viewRead = true;
      } else {
        setRuns(runs);
      }
      loaded = true;
      state.width = requestWidth(chartWidthGuess(content));
      app.refresh();
    } catch (e) {
      clear(content);
      content.appendChild(errorState(errorText(e), () => void load()));
    }
  }

  function setRuns(runs: RunInfo[]): void {
    state.runs = runs;
    const names = new Set(runs.map((r) => r.run));
    const kept = [...state.selected].filter((r) => names.has(r));
    state.selected = kept.length ? new Set(kept) : defaultSelection(runs);
  }

  // Auto-reload: asks for the run listing again every autoReloadMs while the
  // page is visible; re-renders (keeping the tab, selection and scroll
  // position) only when a run got new records.
  let polling = false;
  async function poll(): Promise<void> {
    // Not while the page is hidden (another browser tab) or the frame has no
    // layout (charts drawn then would have no size).
    const hidden = root.ownerDocument.hidden || !root.ownerDocument.defaultView?.innerWidth;
    if (polling || !loaded || !auto.checked || hidden) return;
    polling = true;
    try {
      const runs = parseRuns(await api.runs(true));
      if (runsFingerprint(runs) === runsFingerprint(state.runs)) return;
      clearCache();
      setRuns(runs);
      const top = content.scrollTop;
      renderSide();
      await renderTab();
      content.scrollTop = top;
    } catch {
      // keep what is shown; the next poll asks again
    } finally {
      polling = false;
    }
  }
  if (autoReloadMs > 0 && win) {
    const timer = win.setInterval(() => {
      if (!root.isConnected) win.clearInterval(timer);
      else void poll();
    }, autoReloadMs);
  }

  void load();
  return app;
}

function parseRuns(resp: RunsResponse | undefined): RunInfo[] {
  const runs = Array.isArray(resp?.runs) ? resp.runs.filter((r) => r && typeof r.run === "string") : [];
  return runs.map(normaliseRun);
}

function normaliseRun(r: RunInfo): RunInfo {
  return {
    run: r.run,
    status: typeof r.status === "string" ? r.status : "no_data",
    findings: Array.isArray(r.findings) ? r.findings.filter((f) => f && typeof f === "object") : [],
    predictions: Array.isArray(r.predictions) ? r.predictions.filter((p) => p && typeof p.name === "string") : [],
    gradients: Array.isArray(r.gradients)
      ? r.gradients
          .filter((g) => g && typeof g.name === "string")
          .map((g) => ({ name: g.name, variables: Array.isArray(g.variables) ? g.variables.map(String) : [] }))
      : [],
    has_manifest: !!r.has_manifest,
    train_mode: Array.isArray(r.train_mode)
      ? r.train_mode
          .filter((t) => t && typeof t.name === "string")
          .map((t) => ({ name: t.name, layers: Array.isArray(t.layers) ? t.layers.map(String) : [] }))
      : [],
    error: typeof r.error === "string" && r.error ? r.error : undefined,
    last_step: typeof r.last_step === "number" ? r.last_step : null,
    last_wall_time: typeof r.last_wall_time === "number" ? r.last_wall_time : null,
  };
}

export interface RunGroup {
  /** the runs' parent directory, or null for a run without one */
  parent: string | null;
  runs: string[];
  leaf: (run: string) => string;
}

/**
 * Groups runs by their parent directory ("exp/train", "exp/validation" ->
 * "exp"), keeping the listing order (a group sits where its first run is).
 */
export function groupRuns(runs: string[]): RunGroup[] {
  const out: RunGroup[] = [];
  const byParent = new Map<string, RunGroup>();
  for (const run of runs) {
    const i = run.lastIndexOf("/");
    if (i <= 0 || i === run.length - 1) {
      out.push({ parent: null, runs: [run], leaf: (r) => r });
      continue;
    }
    const parent = run.slice(0, i);
    let g = byParent.get(parent);
    if (!g) {
      g = { parent, runs: [], leaf: (r) => r.slice(parent.length + 1) };
      byParent.set(parent, g);
      out.push(g);
    }
    g.runs.push(run);
  }
  return out;
}

/** Pixel width of one chart in the two-column grid. */
function chartWidthGuess(content: HTMLElement): number {
  const w = content.clientWidth || (content.ownerDocument.defaultView?.innerWidth ?? 1280) - 240;
  return Math.floor((w - 32 - 16) / 2) - 80;
}

export function badgeClass(status: string): string {
  return status === "healthy" || status === "unhealthy" || status === "no_data" ? status : "other";
}

export function statusText(status: string): string {
  return status === "no_data" ? "no data" : status;
}

export function noDataState(): HTMLElement {
  const e = emptyState(
    "No health data yet: add tb_plugin.HealthCallback(log_dir) to model.fit callbacks",
  );
  e.appendChild(
    el(
      "div",
      { class: "state-detail" },
      "For example: ",
      el("code", {}, "model.fit(x, y, callbacks=[tb_plugin.HealthCallback(log_dir)])"),
      ", then point TensorBoard at the same log directory and press Reload.",
    ),
  );
  return e;
}
