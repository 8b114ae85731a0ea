// Tiny DOM helpers. Text is only ever set through text nodes / textContent:
// run, layer and tag names come from users' log directories and are never
// parsed as HTML.

type Child = Node | string | number | null | undefined | false;

export interface Attrs {
  class?: string;
  testid?: string;
  title?: string;
  style?: Partial<CSSStyleDeclaration>;
  data?: Record<string, string | number | undefined>;
  attrs?: Record<string, string>;
  on?: Partial<Record<keyof HTMLElementEventMap, (ev: Event) => void>>;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  a: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (a.class) e.className = a.class;
  if (a.testid) e.setAttribute("data-testid", a.testid);
  if (a.title) e.title = a.title;
  if (a.style) Object.assign(e.style, a.style);
  if (a.data) {
    for (const [k, v] of Object.entries(a.data)) if (v !== undefined) e.setAttribute(`data-${k}`, String(v));
  }
  if (a.attrs) for (const [k, v] of Object.entries(a.attrs)) e.setAttribute(k, v);
  if (a.on) {
    for (const [k, f] of Object.entries(a.on)) if (f) e.addEventListener(k, f as EventListener);
  }
  append(e, ...children);
  return e;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

export function clear(e: Element): void {
  while (e.firstChild) e.removeChild(e.firstChild);
}

export function loadingState(text = "Loading…"): HTMLElement {
  return el("div", { class: "state state-loading", testid: "loading" }, el("div", { class: "spinner" }), text);
}

export function emptyState(title: string, detail?: string): HTMLElement {
  return el(
    "div",
    { class: "state state-empty", testid: "empty-state" },
    el("div", { class: "state-title" }, title),
    detail ? el("div", { class: "state-detail" }, detail) : null,
  );
}

export function errorState(message: string, onRetry?: () => void): HTMLElement {
  return el(
    "div",
    { class: "state state-error", testid: "error-state", attrs: { role: "alert" } },
    el("div", { class: "state-title" }, "Could not load health data"),
    el("pre", { class: "state-message" }, message),
    onRetry ? el("button", { class: "btn", on: { click: () => onRetry() } }, "Retry") : null,
  );
}
