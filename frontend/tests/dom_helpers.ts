// Shared by the DOM tests: a clean page, fake responses, waiting for the
// page, selecting, and a canvas.

import { clearCache } from "../src/api";

/** A page with nothing on it, no view kept in the URL and no cached data. */
export function resetPage(): void {
  history.replaceState(null, "", "/"); // the view the URL keeps: none
  document.head.innerHTML = "";
  document.body.innerHTML = "";
  clearCache();
}

export function respond(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status });
}

export async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error("timeout");
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const q = (sel: string) => document.querySelector(sel);
export const qa = (sel: string) => Array.from(document.querySelectorAll(sel));

// jsdom has no canvas: a 2D context whose every method is a no-op lets
// ECharts draw (the charts' data-points are what these tests read).
function fakeContext(): unknown {
  const target: Record<string | symbol, unknown> = {};
  const proxy: unknown = new Proxy(target, {
    get(t, p) {
      if (p in t) return t[p];
      if (p === "measureText") return (s: string) => ({ width: String(s).length * 6 });
      if (p === "getImageData") return () => ({ data: new Uint8ClampedArray(4) });
      return () => proxy;
    },
    set(t, p, v) {
      t[p] = v;
      return true;
    },
  });
  return proxy;
}

export function installFakeCanvas(): void {
  HTMLCanvasElement.prototype.getContext = function () {
    return fakeContext();
  } as unknown as HTMLCanvasElement["getContext"];
}
