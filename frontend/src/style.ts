// CSS injected from the bundle as one <style> element (TensorBoard's CSP allows
// inline styles but no external stylesheets or fonts).

export const ORANGE = "#f57c00";
export const GREY = "#616161";
export const RED = "#d32f2f";
export const GREEN = "#388e3c";

/** Run colours, given to the selected runs in order (no greys: grey means "zero"). */
export const RUN_COLORS = [
  "#1e88e5",
  "#f4511e",
  "#43a047",
  "#8e24aa",
  "#00897b",
  "#d81b60",
  "#6d4c41",
  "#3949ab",
  "#c0ca33",
  "#fb8c00",
];

const CSS = `
:root { color-scheme: light; }
html, body { margin: 0; padding: 0; background: #f5f5f5; }
body, .hp-root, .hp-root button, .hp-root select, .hp-root input {
  font-family: Roboto, "Helvetica Neue", "Segoe UI", Arial, sans-serif;
  font-size: 13px; color: #212121;
}
.hp-root { display: flex; height: 100vh; overflow: hidden; }
.hp-side { width: 240px; flex: none; background: #fff; border-right: 1px solid #e0e0e0;
  display: flex; flex-direction: column; overflow: hidden; }
.hp-side h2 { font-size: 12px; font-weight: 500; text-transform: uppercase; letter-spacing: .04em;
  color: ${GREY}; margin: 14px 16px 6px; }
.hp-side .run-filter { margin: 0 16px 6px; padding: 4px 6px; border: 1px solid #ccc; border-radius: 3px; }
.hp-side .run-actions { margin: 0 16px 6px; display: flex; gap: 8px; }
.hp-side .run-actions button { background: none; border: none; color: ${ORANGE}; cursor: pointer; padding: 0; font-size: 12px; }
.hp-runs { overflow: auto; flex: 1; padding-bottom: 12px; }
.hp-run { display: flex; align-items: center; gap: 6px; padding: 3px 16px; cursor: pointer; }
.hp-run:hover { background: #fafafa; }
.hp-run input { margin: 0; accent-color: ${ORANGE}; }
.hp-run .swatch { width: 10px; height: 10px; border-radius: 2px; flex: none; }
.hp-run .name { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.hp-run.child { padding-left: 34px; }
.hp-run .swatch.off { background: transparent; box-shadow: inset 0 0 0 1px #ccc; }
.hp-run .badge { font-size: 10px; padding: 0 6px; }
.hp-group-head { display: flex; align-items: center; gap: 6px; padding: 5px 16px 1px; cursor: pointer; font-weight: 500; }
.hp-group-head:hover { background: #fafafa; }
.hp-group-head input { margin: 0; accent-color: ${ORANGE}; }
.hp-group-head .name { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.dot { width: 8px; height: 8px; border-radius: 50%; flex: none; }
.dot-unhealthy { background: ${RED}; }
.dot-healthy { background: ${GREEN}; }
.dot-no_data { background: #bdbdbd; }
.hp-main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
.hp-bar { display: flex; align-items: center; background: #fff; border-bottom: 1px solid #e0e0e0;
  padding: 0 12px; height: 44px; flex: none; gap: 4px; }
.hp-tab { background: none; border: none; border-bottom: 2px solid transparent; height: 44px; padding: 0 14px;
  cursor: pointer; color: ${GREY}; font-weight: 500; text-transform: uppercase; font-size: 12px; letter-spacing: .04em; }
.hp-tab:hover { color: #212121; }
.hp-tab.active { color: ${ORANGE}; border-bottom-color: ${ORANGE}; }
.hp-bar .spacer { flex: 1; }
.hp-auto { display: flex; align-items: center; gap: 4px; margin-right: 12px; color: #616161; cursor: pointer; }
.hp-auto input { margin: 0; accent-color: ${ORANGE}; }
.btn { background: #fff; border: 1px solid #ccc; border-radius: 3px; padding: 4px 10px; cursor: pointer; color: #424242; }
.btn:hover { border-color: ${ORANGE}; color: ${ORANGE}; }
.hp-content { flex: 1; overflow: auto; padding: 16px; }
.badge { display: inline-block; border-radius: 10px; padding: 1px 8px; font-size: 11px; font-weight: 500;
  text-transform: uppercase; letter-spacing: .03em; white-space: nowrap; }
.badge-healthy { background: #e8f5e9; color: ${GREEN}; }
.badge-unhealthy { background: #ffebee; color: ${RED}; }
.badge-no_data, .badge-other { background: #eeeeee; color: ${GREY}; }
.badge-error { background: ${RED}; color: #fff; }
.badge-warning { background: #ffb74d; color: #4e2a00; }
.badge-info { background: #e3f2fd; color: #0d47a1; }
.panel { background: #fff; border: 1px solid #e0e0e0; border-radius: 4px; margin-bottom: 16px; }
.panel > h3 { margin: 0; padding: 10px 14px; font-size: 14px; font-weight: 500; border-bottom: 1px solid #eee; }
.h-note { font-weight: 400; font-size: 12px; margin-left: 10px; }
.run-error { color: ${RED}; font-size: 12px; margin-top: 2px; white-space: pre-wrap; }
.runs-table { width: 100%; border-collapse: collapse; }
.runs-table th { text-align: left; font-weight: 500; color: ${GREY}; font-size: 12px; padding: 6px 14px; border-bottom: 1px solid #eee; }
.runs-table td { padding: 6px 14px; border-bottom: 1px solid #f3f3f3; vertical-align: middle; }
.runs-table tr:last-child td { border-bottom: none; }
.runs-table tr.run-row { cursor: pointer; }
.runs-table tr.run-row:hover { background: #fff8f0; }
.runs-table .runname { font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 12px; word-break: break-all; }
.muted { color: #757575; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; padding: 12px; }
.card { border: 1px solid #e0e0e0; border-left: 4px solid #ffb74d; border-radius: 4px; padding: 10px 12px;
  cursor: pointer; background: #fff; transition: box-shadow .15s; min-width: 0; }
.card.sev-error { border-left-color: ${RED}; }
.card:hover, .card:focus { box-shadow: 0 2px 6px rgba(0,0,0,.15); outline: none; }
.card-head { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin-bottom: 6px; }
.card-kind { font-weight: 500; }
.card-meta { color: #757575; font-size: 12px; }
.card-meta .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; color: #424242; }
.card-msg { margin: 4px 0 6px; line-height: 1.4; }
.card-suggest { background: #fff8e1; border-radius: 3px; padding: 5px 8px; line-height: 1.4; margin-top: 6px; }
.card-suggest b { color: ${ORANGE}; font-weight: 500; }
.card-open { color: ${ORANGE}; font-size: 12px; margin-top: 6px; }
.evidence { font-size: 12px; }
.ev-grid { display: grid; grid-auto-flow: dense; grid-template-columns: repeat(2, minmax(0, 1fr)); column-gap: 16px; row-gap: 1px; }
.ev { display: flex; gap: 6px; min-width: 0; border-bottom: 1px solid #f5f5f5; padding: 1px 0; }
.ev .k { color: #757575; flex: none; }
.ev.long { grid-column: 1 / -1; }
.ev .v { font-family: "Roboto Mono", Menlo, Consolas, monospace; margin-left: auto; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.ev-details { margin-top: 4px; }
.ev-details summary { cursor: pointer; color: #616161; }
.ev-table { border-collapse: collapse; margin: 2px 0 0 12px; font-size: 11px; }
.ev-table th { font-weight: 500; color: #757575; text-align: right; padding: 1px 6px; }
.ev-table td { padding: 1px 6px; text-align: right; font-family: "Roboto Mono", Menlo, Consolas, monospace; border-bottom: 1px solid #f5f5f5; }
.ev-table td.mono { text-align: left; }
.nonfinite { color: ${RED}; font-weight: 500; }
.grid2 { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
.chart-panel { background: #fff; border: 1px solid #e0e0e0; border-radius: 4px; padding: 8px 10px 6px; min-width: 0; }
.chart-panel.wide { grid-column: 1 / -1; }
.chart-panel h4 { margin: 0 0 2px; font-size: 13px; font-weight: 500; }
.chart-panel .sub { color: #757575; font-size: 12px; margin-bottom: 4px; min-height: 16px; }
.chart-panel .controls { display: flex; gap: 8px; align-items: center; margin-bottom: 4px; flex-wrap: wrap; }
.chart-panel select { max-width: 100%; padding: 2px 4px; }
.chart { width: 100%; height: 260px; }
.chart.tall { height: 320px; }
.chart.short { height: 200px; }
.multi { display: grid; gap: 8px; }
.multi-item { min-width: 0; }
.multi-item .run-title { font-size: 12px; font-weight: 500; margin: 2px 0 0 4px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.na { color: #9e9e9e; font-size: 12px; padding: 10px 4px; }
.focus-banner { background: #fff3e0; border: 1px solid #ffe0b2; border-radius: 4px; padding: 8px 12px; margin-bottom: 12px;
  display: flex; gap: 8px; align-items: center; }
.focus-banner .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; }
.focus-banner button { margin-left: auto; }
.state { display: flex; flex-direction: column; align-items: center; justify-content: center; text-align: center;
  padding: 48px 24px; color: ${GREY}; gap: 8px; }
.state-title { font-size: 16px; color: #424242; }
.state-detail { max-width: 560px; line-height: 1.5; }
.state-detail code, .state code { background: #eee; padding: 1px 4px; border-radius: 3px; font-family: "Roboto Mono", Menlo, Consolas, monospace; }
.state-error .state-title { color: ${RED}; }
.state-message { white-space: pre-wrap; background: #ffebee; color: #b71c1c; padding: 8px 12px; border-radius: 4px; max-width: 720px; margin: 0; }
.spinner { width: 24px; height: 24px; border: 3px solid #ffe0b2; border-top-color: ${ORANGE}; border-radius: 50%; animation: hp-spin .8s linear infinite; }
@keyframes hp-spin { to { transform: rotate(360deg); } }
.section-title { font-size: 12px; font-weight: 500; text-transform: uppercase; letter-spacing: .04em; color: ${GREY}; margin: 4px 0 8px; }
.run-key { display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px; color: #424242; align-items: center; }
.run-key.small { font-size: 11px; gap: 0 10px; margin: 0 0 0 4px; color: ${GREY}; }
.key-item { display: inline-flex; align-items: center; gap: 5px; min-width: 0; max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.key-swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; flex: none; margin-right: 5px; vertical-align: -1px; }
.key-item .key-swatch { margin-right: 0; }
.key-styles { display: inline-flex; align-items: center; gap: 5px; color: ${GREY}; font-size: 12px; }
.key-line { display: inline-block; width: 18px; border-top: 2px solid ${GREY}; margin-left: 6px; }
.key-line.dashed { border-top-style: dashed; }
.summary-scroll { overflow-x: auto; }
.summary-table { border-collapse: collapse; width: 100%; font-size: 12px; }
.summary-table th { text-align: left; font-weight: 500; color: ${GREY}; padding: 5px 10px; border-bottom: 1px solid #eee; white-space: nowrap; cursor: help; }
.summary-table td { padding: 5px 10px; border-bottom: 1px solid #f5f5f5; white-space: nowrap; font-variant-numeric: tabular-nums; }
.summary-table td.run-cell { font-family: inherit; font-weight: 500; max-width: 260px; overflow: hidden; text-overflow: ellipsis; }
.summary-table tr:last-child td { border-bottom: none; }
.summary-table td.bad, .model-table td.bad { color: #b71c1c; background: #ffebee; font-weight: 500; }
.grid-na { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 8px; }
.chart-panel.na-panel { padding: 6px 10px; }
.chart-panel.na-panel .sub { display: none; }
.chart-panel.na-panel .controls { display: none; }
.chart-panel.na-panel .na { padding: 2px 0; }
.model-list { padding: 4px 14px 8px; }
.model-item { min-width: 0; border-bottom: 1px solid #f5f5f5; }
.model-item:last-child { border-bottom: none; }
.model-line { display: flex; flex-wrap: wrap; align-items: baseline; gap: 2px 16px; padding: 5px 0; font-size: 12px; color: #616161; cursor: pointer; }
div.model-line { cursor: default; }
summary.model-line { list-style: none; }
summary.model-line::-webkit-details-marker { display: none; }
.model-line .caret { color: #9e9e9e; width: 10px; margin-right: -10px; transition: transform .1s; display: inline-block; }
details[open] > summary.model-line .caret { transform: rotate(90deg); }
.model-run { font-weight: 500; color: #212121; min-width: 200px; max-width: 300px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.model-part b { font-weight: 500; color: #212121; font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 11.5px; }
.model-part.bad { color: #b71c1c; background: #ffebee; border-radius: 3px; padding: 0 4px; }
.model-part.bad b { color: #b71c1c; }
.model-scroll { max-height: 220px; overflow: auto; margin: 0 0 6px 14px; }
.model-table { border-collapse: collapse; width: 100%; font-size: 12px; table-layout: fixed; }
.model-table th { text-align: left; font-weight: 500; color: #757575; padding: 2px 6px; border-bottom: 1px solid #eee; position: sticky; top: 0; background: #fff; }
.model-table td { padding: 2px 6px; border-bottom: 1px solid #f5f5f5; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.model-table th:nth-child(1) { width: 18%; }
.model-table th:nth-child(2) { width: 14%; }
.model-table th:nth-child(3) { width: 12%; }
.model-table th:nth-child(6) { width: 9%; }
.model-table .num { text-align: right; }
.model-table .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; }
.model-table .tag { font-family: Roboto, Arial, sans-serif; font-size: 10px; color: #1565c0; border: 1px solid #90caf9; border-radius: 8px; padding: 0 4px; margin-left: 4px; }
.model-problem { color: #b71c1c; font-size: 12px; margin: 0 0 4px 14px; }
.model-versions { font-size: 11px; margin: 0 0 6px 14px; }
.legend-note { font-size: 12px; color: #757575; margin: -8px 0 12px; }
.cmp-controls { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 10px 16px; padding: 10px 14px; }
.cmp-field { display: flex; flex-direction: column; gap: 3px; font-size: 12px; }
.cmp-row { display: flex; align-items: center; gap: 4px; }
.cmp-field input[type=number][hidden] { display: none; }
.cmp-field.cmp-check { flex-direction: row; align-items: center; gap: 5px; padding-bottom: 4px; }
.cmp-field input[type=text] { width: 300px; padding: 3px 6px; border: 1px solid #ccc; border-radius: 3px; }
.cmp-field input[type=number] { width: 52px; }
.cmp-field select { max-width: 280px; padding: 2px 4px; }
.cmp-controls .mono, .cmp-health .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 12px; }
.cmp-health { border-left: 4px solid ${RED}; }
.cmp-health ul { margin: 8px 0; padding-left: 32px; line-height: 1.5; }
.cmp-health-details { font-size: 12px; }
.summary-table tr.cmp-verdict td { white-space: normal; line-height: 1.4; padding-bottom: 10px; border-bottom: 1px solid #e0e0e0; }
.summary-table tr.cmp-a_better td, .summary-table tr.cmp-b_better td { color: #1b5e20; }
.cmp-flag { margin-left: 8px; }
`;

export function injectStyle(doc: Document = document): void {
  if (doc.getElementById("health-plugin-style")) return;
  const s = doc.createElement("style");
  s.id = "health-plugin-style";
  s.textContent = CSS;
  doc.head.appendChild(s);
}
