// Run colours. Like TensorBoard (which numbers runs in the order it first
// sees them and takes palette[number % size]), a run keeps one colour
// whatever is selected; the palette has 20 colours instead of 7.

import type { State } from "./state";

/**
 * 20 colours far apart (CIE76 distance >= 28 between any two), readable on
 * the light and the dark background, none near the red of non-finite marks
 * or the orange of focus marks; no greys (grey means "zero").
 */
export const RUN_COLORS = [
  "#1e88e5", "#72ad0c", "#d50b56", "#098777", "#d99c68",
  "#a936c2", "#d692bf", "#5c6b21", "#944a4b", "#61b7de",
  "#4660f3", "#ad9907", "#4eb068", "#6c5594", "#f44dab",
  "#b35713", "#b995f6", "#f68486", "#1f6a96", "#aeb164",
];

/** Colour of an unselected run (sidebar swatch). */
export const UNSELECTED_COLOR = "transparent";

/** Per state: each run's number, in the order the runs were first listed. */
const numbers = new WeakMap<State, Map<string, number>>();

function runNumber(state: State, run: string): number {
  let m = numbers.get(state);
  if (!m) numbers.set(state, (m = new Map()));
  if (!m.has(run)) {
    // number the whole listing at once: a run's number is its index among all runs
    for (const r of state.runs) if (!m.has(r.run)) m.set(r.run, m.size);
    if (!m.has(run)) m.set(run, m.size);
  }
  return m.get(run) as number;
}

/** Colour of a run: the same in every view and for any selection; none when unselected. */
export function runColor(state: State, run: string): string {
  if (!state.selected.has(run)) return UNSELECTED_COLOR;
  return RUN_COLORS[runNumber(state, run) % RUN_COLORS.length];
}
