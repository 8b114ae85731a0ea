// CSS of the overview's triage table, the focus banner's finding and the
// download buttons, injected beside style.ts's sheet (its colours: style.ts's
// variables, light or dark).

import { ORANGE } from "./style";

const CSS = `
.ov-head { display: flex; align-items: baseline; gap: 8px; flex-wrap: wrap; }
.ov-actions { margin-left: auto; display: flex; gap: 6px; }
.ov-actions .btn { font-size: 12px; }
.triage { width: 100%; border-collapse: collapse; table-layout: fixed; }
.triage td { padding: 4px 10px; border-bottom: 1px solid var(--line-soft); white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; vertical-align: middle; }
.triage td.sev { width: 62px; }
.triage td.name { width: 30%; }
/* a long name is cut in its middle (names.ts); the split note after it stays */
.triage td.name .name-line { display: flex; min-width: 0; }
.triage td.name .muted { flex: none; white-space: pre; }
.triage td.cause { width: 32%; }
.triage td.fix { color: var(--grey); }
.triage .mono { font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 12px; }
.triage tr.triage-row { cursor: pointer; }
.triage tr.triage-row:hover, .triage tr.triage-row.open { background: var(--row-hover); }
.triage tr.triage-detail > td { white-space: normal; background: var(--hover); padding: 8px 10px 12px; }
.triage .ov-more { color: ${ORANGE}; font-size: 12px; }
.triage .card { margin-bottom: 8px; background: var(--surface); cursor: pointer; }
.triage .card-head .card-meta { font-size: 12px; }
.triage .card-open { margin-left: auto; }
.triage .symptoms { margin: 6px 0 0 12px; }
.triage .symptoms .card { margin: 4px 0; }
.triage .run-error { margin-bottom: 8px; }
.ov-rest-panel > summary { padding: 10px 14px; cursor: pointer; font-weight: 500; }
.ov-rest { display: flex; flex-wrap: wrap; gap: 4px 8px; padding: 4px 14px 12px; }
.ov-rest-run { border: 1px solid var(--border); background: var(--surface); color: var(--text); border-radius: 12px; padding: 2px 10px; cursor: pointer;
  font-family: "Roboto Mono", Menlo, Consolas, monospace; font-size: 12px; display: inline-flex; align-items: center; gap: 6px; }
.focus-banner { display: block; position: sticky; top: -16px; z-index: 5; box-shadow: 0 2px 4px var(--shadow-soft); }
.focus-banner .fb-head { display: flex; gap: 8px; align-items: center; }
.focus-banner .fb-msg { margin: 6px 0 2px; line-height: 1.4; }
.focus-banner .fb-cause { margin: 2px 0; line-height: 1.4; }
.focus-banner .fb-evidence summary { cursor: pointer; color: var(--grey); font-size: 12px; margin-top: 4px; }
.chart-panel h4 { display: flex; align-items: baseline; gap: 6px; }
.chart-panel h4 .dl-group { margin-left: auto; display: flex; gap: 2px; }
.chart-panel .dl { border: none; background: none; color: var(--faint); font-size: 10px; cursor: pointer; padding: 0 3px; }
.chart-panel .dl:hover { color: ${ORANGE}; text-decoration: underline; }
`;

export function injectTriageStyle(doc: Document = document): void {
  if (doc.getElementById("health-plugin-triage-style")) return;
  const s = doc.createElement("style");
  s.id = "health-plugin-triage-style";
  s.textContent = CSS;
  doc.head.appendChild(s);
}
