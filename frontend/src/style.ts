// CSS injected from the bundle as one <style> element (TensorBoard's CSP allows
// inline styles but no external stylesheets or fonts).

import { DARK_CLASS, followTheme } from "./theme";

export const ORANGE = "#f57c00";
export const GREY = "#616161";
export const RED = "#d32f2f";
export const GREEN = "#388e3c";

const CSS = `
/* colours of the light theme; the dark one (TensorBoard's dark mode) overrides them */
:root {
  --bg: #f5f5f5; --surface: #fff; --text: #212121; --text2: #424242; --grey: ${GREY}; --muted: #757575;
  --faint: #9e9e9e; --border: #e0e0e0; --line: #eee; --line-soft: #f5f5f5; --input-border: #ccc;
  --hover: #fafafa; --row-hover: #fff8f0; --chip: #eee; --shadow: rgba(0,0,0,.15); --shadow-soft: rgba(0,0,0,.08);
  --ok: ${GREEN}; --ok-bg: #e8f5e9; --bad: ${RED}; --bad-bg: #ffebee; --bad-text: #b71c1c; --good-text: #1b5e20;
  --info-bg: #e3f2fd; --info-text: #0d47a1; --note-bg: #fff8e1; --focus-bg: #fff3e0; --focus-border: #ffe0b2;
  --mark: #1565c0; --mark-border: #90caf9;
}
:root.${DARK_CLASS} {
  --bg: #303030; --surface: #3a3a3a; --text: #e8e8e8; --text2: #d0d0d0; --grey: #b0b0b0; --muted: #a8a8a8;
  --faint: #8a8a8a; --border: #555; --line: #4a4a4a; --line-soft: #444; --input-border: #666;
  --hover: #444; --row-hover: #4a3d30; --chip: #4a4a4a; --shadow: rgba(0,0,0,.5); --shadow-soft: rgba(0,0,0,.35);
  --ok: #81c784; --ok-bg: rgba(56,142,60,.25); --bad: #ef5350; --bad-bg: rgba(211,47,47,.25); --bad-text: #ef9a9a;
  --good-text: #a5d6a7; --info-bg: rgba(33,150,243,.2); --info-text: #90caf9; --note-bg: rgba(255,183,77,.12);
  --focus-bg: rgba(245,124,0,.15); --focus-border: rgba(245,124,0,.4); --mark: #64b5f6; --mark-border: #1e88e5;
}
:root { color-scheme: light; }
:root.hp-dark { color-scheme: dark; }
html, body { margin: 0; padding: 0; background: var(--bg); }
body, .hp-root, .hp-root button, .hp-root select, .hp-root input {
  font-family: Roboto, "Helvetica Neue", "Segoe UI", Arial, sans-serif;
  font-size: 13px; color: var(--text);
}
.hp-root { display: flex; height: 100vh; overflow: hidden; }
.hp-side { width: 240px; flex: none; background: var(--surface); border-right: 1px solid var(--border);
  display: flex; flex-direction: column; overflow: hidden; }
.hp-side h2 { font-size: 12px; font-weight: 500; text-transform: uppercase; letter-spacing: .04em;
  color: var(--grey); margin: 14px 16px 6px; }
.hp-side .run-filter { margin: 0 16px 6px; padding: 4px 6px; border: 1px solid var(--input-border); border-radius: 3px; }
.hp-side .run-actions { margin: 0 16px 6px; display: flex; gap: 8px; }
.hp-side .run-actions button { background: none; border: none; color: ${ORANGE}; cursor: pointer; padding: 0; font-size: 12px; }
.hp-runs { overflow: auto; flex: 1; padding-bottom: 12px; }
.hp-run { display: flex; align-items: center; gap: 6px; padding: 3px 16px; cursor: pointer; }
.hp-run:hover { background: var(--hover); }
.hp-run input { margin: 0; accent-color: ${ORANGE}; }
.hp-run .swatch { width: 10px; height: 10px; border-radius: 2px; flex: none; }
.hp-run .name { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.hp-run.child { padding-left: 34px; }
.hp-run .swatch.off { background: transparent; box-shadow: inset 0 0 0 1px var(--input-border); }
.hp-run .badge { font-size: 10px; padding: 0 6px; }
.hp-group-head { display: flex; align-items: center; gap: 6px; padding: 5px 16px 1px; cursor: pointer; font-weight: 500; }
.hp-group-head:hover { background: var(--hover); }
.hp-group-head input { margin: 0; accent-color: ${ORANGE}; }
.hp-group-head .name { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.dot { width: 8px; height: 8px; border-radius: 50%; flex: none; }
.dot-unhealthy { background: ${RED}; }
.dot-healthy { background: ${GREEN}; }
.dot-no_data { background: var(--faint); }
.hp-main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
.hp-bar { display: flex; align-items: center; background: var(--surface); border-bottom: 1px solid var(--border);
  padding: 0 12px; height: 44px; flex: none; gap: 4px; }
.hp-tab { background: none; border: none; border-bottom: 2px solid transparent; height: 44px; padding: 0 14px;
  cursor: pointer; color: var(--grey); font-weight: 500; text-transform: uppercase; font-size: 12px; letter-spacing: .04em; }
.hp-tab:hover { color: var(--text); }
.hp-tab.active { color: ${ORANGE}; border-bottom-color: ${ORANGE}; }
.hp-bar .spacer { flex: 1; }
.hp-auto { display: flex; align-items: center; gap: 4px; margin-right: 12px; color: var(--grey); cursor: pointer; }
.hp-auto input { margin: 0; accent-color: ${ORANGE}; }
.btn { background: var(--surface); border: 1px solid var(--input-border); border-radius: 3px; padding: 4px 10px; cursor: pointer; color: var(--text2); }
.btn:hover { border-color: ${ORANGE}; color: ${ORANGE}; }
.hp-content { flex: 1; overflow: auto; padding: 16px; }
.badge { display: inline-block; border-radius: 10px; padding: 1px 8px; font-size: 11px; font-weight: 500;
  text-transform: uppercase; letter-spacing: .03em; white-space: nowrap; }
.badge-healthy { background: var(--ok-bg); color: var(--ok); }
.badge-unhealthy { background: var(--bad-bg); color: var(--bad); }
.badge-no_data, .badge-other { background: var(--chip); color: var(--grey); }
.badge-error { background: ${RED}; color: #fff; }
.badge-warning { background: #ffb74d; color: #4e2a00; }
.badge-info { background: var(--info-bg); color: var(--info-text); }
.panel { background: var(--surface); border: 1px solid var(--border); border-radius: 4px; margin-bottom: 16px; }
.panel > h3 { margin: 0; padding: 10px 14px; font-size: 14px; font-weight: 500; border-bottom: 1px solid var(--line); }
.h-note { font-weight: 400; font-size: 12px; margin-left: 10px; }
.run-error { color: var(--bad); font-size: 12px; margin-top: 2px; white-space: pre-wrap; }
.muted { color: var(--muted); }
.card { border: 1px solid var(--border); border-left: 4px solid #ffb74d; border-radius: 4px; padding: 10px 12px;
  cursor: pointer; background: var(--surface); transition: box-shadow .15s; min-width: 0; }
.card.sev-error { border-left-color: ${RED}; }
.card:hover, .card:focus { box-shadow: 0 2px 6px var(--shadow); outline: none; }
.card-head { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 6px; }
.card-kind { font-weight: 500; }
.card-meta { color: var(--muted); font-size: 12px; }
.card-meta .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; color: var(--text2); }
.card-msg { margin: 4px 0 6px; line-height: 1.4; }
.card-suggest { background: var(--note-bg); border-radius: 3px; padding: 5px 8px; line-height: 1.4; margin-top: 6px; }
.card-suggest b { color: ${ORANGE}; font-weight: 500; }
.card-open { color: ${ORANGE}; font-size: 12px; margin-top: 6px; }
.evidence { font-size: 12px; }
.ev-grid { display: grid; grid-auto-flow: dense; grid-template-columns: repeat(2, minmax(0, 1fr)); column-gap: 16px; row-gap: 1px; }
.ev { display: flex; gap: 6px; min-width: 0; border-bottom: 1px solid var(--line-soft); padding: 1px 0; }
.ev .k { color: var(--muted); flex: none; }
.ev.long { grid-column: 1 / -1; }
.ev .v { font-family: "Roboto Mono", Menlo, Consolas, monospace; margin-left: auto; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ev-details { margin-top: 4px; }
.ev-details summary { cursor: pointer; color: var(--grey); }
.ev-table { border-collapse: collapse; margin: 2px 0 0 12px; font-size: 11px; }
.ev-table th { font-weight: 500; color: var(--muted); text-align: right; padding: 1px 6px; }
.ev-table td { padding: 1px 6px; text-align: right; font-family: "Roboto Mono", Menlo, Consolas, monospace; border-bottom: 1px solid var(--line-soft); }
.ev-table td.mono { text-align: left; }
.nonfinite { color: var(--bad); font-weight: 500; }
.grid2 { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
.chart-panel { background: var(--surface); border: 1px solid var(--border); border-radius: 4px; padding: 8px 10px 6px; min-width: 0; }
.chart-panel.wide { grid-column: 1 / -1; }
.chart-panel h4 { margin: 0 0 2px; font-size: 13px; font-weight: 500; }
.chart-panel .sub { color: var(--muted); font-size: 12px; margin-bottom: 4px; min-height: 16px; }
.chart-panel .controls { display: flex; gap: 8px; align-items: center; margin-bottom: 4px; flex-wrap: wrap; }
.chart-panel select { max-width: 100%; padding: 2px 4px; }
.chart { width: 100%; height: 260px; }
.chart.tall { height: 320px; }
.chart.short { height: 200px; }
.multi { display: grid; gap: 8px; }
.multi-item { min-width: 0; }
.multi-item .run-title { display: flex; align-items: center; min-width: 0; font-size: 12px; font-weight: 500; margin: 2px 0 0 4px; }
.run-title .key-swatch { margin-right: 6px; }
/* a long name cut in the middle (names.ts) */
.mid-name { display: inline-flex; min-width: 0; max-width: 100%; overflow: hidden; white-space: nowrap; vertical-align: bottom; }
/* wraps anywhere (so a table column can shrink to it) but shows one line, ending in "…" */
.mid-head { flex: 0 1 auto; min-width: 2em; overflow: hidden; white-space: normal; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 1; }
.mid-tail { flex: none; white-space: pre; }
.na { color: var(--faint); font-size: 12px; padding: 10px 4px; }
.focus-banner { background: var(--focus-bg); border: 1px solid var(--focus-border); border-radius: 4px; padding: 8px 12px; margin-bottom: 12px;
  display: flex; gap: 8px; align-items: center; }
.focus-banner .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; }
.focus-banner button { margin-left: auto; }
.state { display: flex; flex-direction: column; align-items: center; justify-content: center; text-align: center;
  padding: 48px 24px; color: var(--grey); gap: 8px; }
.state-title { font-size: 16px; color: var(--text2); }
.state-detail { max-width: 560px; line-height: 1.5; }
.state-detail code, .state code { background: var(--line); padding: 1px 4px; border-radius: 3px; font-family: "Roboto Mono", Menlo, Consolas, monospace; }
.state-error .state-title { color: var(--bad); }
.state-message { white-space: pre-wrap; background: var(--bad-bg); color: var(--bad-text); padding: 8px 12px; border-radius: 4px; max-width: 720px; margin: 0; }
.spinner { width: 24px; height: 24px; border: 3px solid var(--focus-border); border-top-color: ${ORANGE}; border-radius: 50%; animation: hp-spin .8s linear infinite; }
@keyframes hp-spin { to { transform: rotate(360deg); } }
.section-title { font-size: 12px; font-weight: 500; text-transform: uppercase; letter-spacing: .04em; color: var(--grey); margin: 4px 0 8px; }
.run-key { display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px; color: var(--text2); align-items: center; }
.run-key.small { font-size: 11px; gap: 0 10px; margin: 0 0 0 4px; color: var(--grey); }
.key-item { display: inline-flex; align-items: center; gap: 5px; min-width: 0; max-width: 100%; overflow: hidden; white-space: nowrap; }
.key-swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; flex: none; margin-right: 5px; vertical-align: -1px; }
.key-item .key-swatch { margin-right: 0; }
.key-styles { display: inline-flex; align-items: center; gap: 5px; color: var(--grey); font-size: 12px; }
.key-line { display: inline-block; width: 18px; border-top: 2px solid var(--grey); margin-left: 6px; }
.key-line.dashed { border-top-style: dashed; }
.summary-scroll { overflow-x: auto; }
.summary-table { border-collapse: collapse; width: 100%; font-size: 12px; }
.summary-table th { text-align: left; font-weight: 500; color: var(--grey); padding: 5px 10px; border-bottom: 1px solid var(--line); cursor: help; vertical-align: bottom; }
.summary-table td { padding: 5px 10px; border-bottom: 1px solid var(--line-soft); white-space: nowrap; font-variant-numeric: tabular-nums; }
.summary-table td.run-cell { font-family: inherit; font-weight: 500; max-width: 320px; }
/* beside the 10px swatch and its 5px margin */
.summary-table td.run-cell > .mid-name { vertical-align: middle; max-width: calc(100% - 15px); }
.summary-table tr:last-child td { border-bottom: none; }
.summary-table td.bad, .model-table td.bad { color: var(--bad-text); background: var(--bad-bg); font-weight: 500; }
.grid-na { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 8px; }
.chart-panel.na-panel { padding: 6px 10px; }
.chart-panel.na-panel .sub { display: none; }
.chart-panel.na-panel .controls { display: none; }
.chart-panel.na-panel .na { padding: 2px 0; }
.model-list { padding: 4px 14px 8px; }
.model-item { min-width: 0; border-bottom: 1px solid var(--line-soft); }
.model-item:last-child { border-bottom: none; }
.model-line { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 16px; padding: 5px 0; font-size: 12px; color: var(--grey); cursor: pointer; }
div.model-line { cursor: default; }
summary.model-line { list-style: none; }
summary.model-line::-webkit-details-marker { display: none; }
.model-line .caret { color: var(--faint); width: 10px; margin-right: -10px; transition: transform .1s; display: inline-block; }
details[open] > summary.model-line .caret { transform: rotate(90deg); }
.model-run { font-weight: 500; color: var(--text); min-width: 200px; max-width: 300px; display: inline-flex; align-items: center; }
.model-part b { font-weight: 500; color: var(--text); font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 11.5px; }
.model-part.bad { color: var(--bad-text); background: var(--bad-bg); border-radius: 3px; padding: 0 4px; }
.model-part.bad b { color: var(--bad-text); }
.model-scroll { max-height: 220px; overflow: auto; margin: 0 0 6px 14px; }
.model-table { border-collapse: collapse; width: 100%; font-size: 12px; table-layout: fixed; }
.model-table th { text-align: left; font-weight: 500; color: var(--muted); padding: 2px 6px; border-bottom: 1px solid var(--line); position: sticky; top: 0; background: var(--surface); }
.model-table td { padding: 2px 6px; border-bottom: 1px solid var(--line-soft); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.model-table th:nth-child(1) { width: 18%; }
.model-table th:nth-child(2) { width: 14%; }
.model-table th:nth-child(3) { width: 12%; }
.model-table th:nth-child(6) { width: 9%; }
.model-table .num { text-align: right; }
.model-table .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; }
.model-table .tag { font-family: Roboto, Arial, sans-serif; font-size: 10px; color: var(--mark); border: 1px solid var(--mark-border); border-radius: 8px; padding: 0 4px; margin-left: 4px; }
.model-problem { color: var(--bad-text); font-size: 12px; margin: 0 0 4px 14px; }
.model-versions { font-size: 11px; margin: 0 0 6px 14px; }
.legend-note { font-size: 12px; color: var(--muted); margin: -8px 0 12px; }
.cmp-controls { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 10px 16px; padding: 10px 14px; }
.cmp-field { display: flex; flex-direction: column; gap: 3px; font-size: 12px; }
.cmp-row { display: flex; align-items: center; gap: 4px; }
.cmp-field input[type=number][hidden] { display: none; }
.cmp-field.cmp-check { flex-direction: row; align-items: center; gap: 5px; padding-bottom: 4px; }
.cmp-field input[type=text] { width: 300px; padding: 3px 6px; border: 1px solid var(--input-border); border-radius: 3px; }
.cmp-field input[type=number] { width: 52px; }
.cmp-field select { max-width: 280px; padding: 2px 4px; }
.cmp-controls .mono, .cmp-health .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 12px; }
.cmp-health { border-left: 4px solid ${RED}; }
.cmp-health ul { margin: 8px 0; padding-left: 32px; line-height: 1.5; }
.cmp-health-details { font-size: 12px; }
.summary-table tr.cmp-verdict td { white-space: normal; line-height: 1.4; padding-bottom: 10px; border-bottom: 1px solid var(--border); }
.summary-table tr.cmp-a_better td, .summary-table tr.cmp-b_better td { color: var(--good-text); }
.cmp-flag { margin-left: 8px; }
`;

/** Adds the stylesheet and follows TensorBoard's light or dark theme. */
export function injectStyle(doc: Document = document): void {
  if (doc.getElementById("health-plugin-style")) return;
  followTheme(doc);
  const s = doc.createElement("style");
  s.id = "health-plugin-style";
  s.textContent = CSS;
  doc.head.appendChild(s);
}
