// Light or dark, as TensorBoard shows it. TensorBoard marks its dark mode
// with the class `dark-mode` on its <body>; the plugin's iframe is on the
// same origin, so it watches that class. Outside TensorBoard (or when the
// parent cannot be read) it reads TensorBoard's stored setting
// (localStorage "_tb_global_settings", theme "light" | "dark" |
// "browser_default") and, for the browser default, prefers-color-scheme.

/** Class on <html> while the plugin is dark. */
export const DARK_CLASS = "hp-dark";
const SETTINGS_KEY = "_tb_global_settings";

const listeners = new Set<(dark: boolean) => void>();

/** Whether `doc` is shown dark. */
export function isDark(doc: Document = document): boolean {
  return doc.documentElement.classList.contains(DARK_CLASS);
}

/** Calls `f` after each switch between light and dark. */
export function onThemeChange(f: (dark: boolean) => void): void {
  listeners.add(f);
}

function apply(doc: Document, dark: boolean): void {
  if (isDark(doc) === dark) return;
  doc.documentElement.classList.toggle(DARK_CLASS, dark);
  for (const f of listeners) f(dark);
}

/** TensorBoard's <body>, when the plugin runs in its iframe. */
function tensorBoardBody(win: Window): HTMLElement | null {
  try {
    return win.parent !== win ? win.parent.document.body : null;
  } catch {
    return null; // another origin
  }
}

/** The stored theme setting: true / false, or null for the browser's default. */
export function storedDark(win: Window): boolean | null {
  try {
    const theme = JSON.parse(win.localStorage.getItem(SETTINGS_KEY) ?? "{}")?.theme;
    return theme === "dark" ? true : theme === "light" ? false : null;
  } catch {
    return null;
  }
}

/** Follows TensorBoard's theme from now on. */
export function followTheme(doc: Document): void {
  const win = doc.defaultView;
  if (!win) return;
  const body = tensorBoardBody(win);
  if (body) {
    const update = () => apply(doc, body.classList.contains("dark-mode"));
    new MutationObserver(update).observe(body, { attributes: true, attributeFilter: ["class"] });
    update();
    return;
  }
  const media = win.matchMedia?.("(prefers-color-scheme: dark)");
  const update = () => apply(doc, storedDark(win) ?? media?.matches ?? false);
  media?.addEventListener?.("change", update);
  win.addEventListener("storage", update);
  update();
}
