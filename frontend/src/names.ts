// Long run names cut in the middle, never at the end: the end tells
// ".../train" from ".../validation". The full name shows on hover.

import { el } from "./dom";

/**
 * A name that shrinks to its box: the head is cut with "…", the tail (from
 * the last "/", else the last TAIL_CHARS characters) always shows. A short
 * name is all tail.
 */
export function nameSpan(name: string, cls = ""): HTMLElement {
  const cut = tailStart(name);
  return el(
    "span",
    { class: `mid-name${cls ? ` ${cls}` : ""}`, title: name },
    cut > 0 ? el("span", { class: "mid-head" }, name.slice(0, cut)) : null,
    el("span", { class: "mid-tail" }, name.slice(cut)),
  );
}

const TAIL_CHARS = 12;
/** A head shorter than this stays with the tail (a cut head keeps about 2em, style.ts's .mid-head). */
const MIN_HEAD = 4;

/** Where the always-shown tail of a name starts. */
export function tailStart(name: string): number {
  const slash = name.lastIndexOf("/");
  const cut = slash > 0 && name.length - slash <= 40 ? slash : Math.max(0, name.length - TAIL_CHARS);
  return cut < MIN_HEAD ? 0 : cut;
}

/** `name` in at most `max` characters, cut in the middle (canvas text: legends, axis labels). */
export function middleEllipsis(name: string, max: number): string {
  if (name.length <= max) return name;
  const tail = Math.min(name.length - tailStart(name), max - 4);
  const head = max - 1 - tail;
  return `${name.slice(0, head)}…${name.slice(name.length - tail)}`;
}
