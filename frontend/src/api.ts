// Fetching the plugin routes. The plugin iframe's document is TensorBoard's
// data/plugin_entry.html with <base href="plugin/health/">, so relative URLs
// like "./runs" resolve to data/plugin/health/runs, under any --path_prefix and
// under /experiment/<id>/ alike. Never build absolute URLs here.

import type {
  CompareResponse,
  GradientHistogramResponse,
  GradientsResponse,
  ManifestResponse,
  PredictionsResponse,
  RunsResponse,
  ScalarTagsResponse,
  TrainModeResponse,
} from "./types";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly url: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Builds a relative route URL with URL-encoded query parameters. */
export function routeUrl(
  route: string,
  params: Record<string, string | number | undefined> = {},
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined) q.set(k, String(v));
  }
  const qs = q.toString();
  return `./${route}${qs ? `?${qs}` : ""}`;
}

/** Extracts a readable message from an error response body. */
export function errorMessage(status: number, statusText: string, body: string): string {
  const trimmed = body.trim();
  if (trimmed) {
    try {
      const parsed = JSON.parse(trimmed) as unknown;
      if (parsed && typeof parsed === "object" && "error" in parsed) {
        const e = (parsed as { error: unknown }).error;
        if (typeof e === "string" && e) return e;
        return JSON.stringify(e);
      }
    } catch {
      // not JSON: fall through to the raw text
    }
    if (!trimmed.startsWith("<")) return trimmed.slice(0, 500);
  }
  return `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
}

type Fetcher = (url: string) => Promise<Response>;

let fetcher: Fetcher = (url) => fetch(url, { credentials: "same-origin" });

/** For tests: replace the fetch implementation. */
export function setFetcher(f: Fetcher): void {
  fetcher = f;
}

const cache = new Map<string, Promise<unknown>>();

export function clearCache(): void {
  cache.clear();
}

export async function getJson<T>(url: string): Promise<T> {
  const hit = cache.get(url);
  if (hit) return hit as Promise<T>;
  const p = (async () => {
    let resp: Response;
    try {
      resp = await fetcher(url);
    } catch (e) {
      throw new ApiError(`Network error: ${(e as Error).message ?? String(e)}`, 0, url);
    }
    const text = await resp.text();
    if (!resp.ok) {
      throw new ApiError(errorMessage(resp.status, resp.statusText, text), resp.status, url);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(`Malformed JSON from ${url}`, resp.status, url);
    }
  })();
  cache.set(url, p);
  p.catch(() => cache.delete(url));
  return p;
}

export const api = {
  /** The run listing; `fresh`: ask the server again rather than the cache. */
  runs: (fresh = false) => {
    const url = routeUrl("runs");
    if (fresh) cache.delete(url);
    return getJson<RunsResponse>(url);
  },
  predictions: (run: string, name: string, width: number) =>
    getJson<PredictionsResponse>(routeUrl("predictions", { run, name, width })),
  gradients: (run: string, name: string, width: number) =>
    getJson<GradientsResponse>(routeUrl("gradients", { run, name, width })),
  gradientHistogram: (run: string, name: string, variable: string, width: number) =>
    getJson<GradientHistogramResponse>(
      routeUrl("gradient_histogram", { run, name, variable, width }),
    ),
  manifest: (run: string) => getJson<ManifestResponse>(routeUrl("manifest", { run })),
  trainMode: (run: string, name: string, width: number) =>
    getJson<TrainModeResponse>(routeUrl("train_mode", { run, name, width })),
  scalarTags: () => getJson<ScalarTagsResponse>(routeUrl("scalar_tags")),
  /** `params`: the compare route's query (see compareQuery in compare.ts). */
  compare: (params: Record<string, string | undefined>) => getJson<CompareResponse>(routeUrl("compare", params)),
};
