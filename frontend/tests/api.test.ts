import { afterEach, describe, expect, it } from "vitest";
import { api, ApiError, clearCache, errorMessage, routeUrl, setFetcher } from "../src/api";

afterEach(() => clearCache());

describe("routeUrl", () => {
  it("builds relative URLs with encoded params", () => {
    expect(routeUrl("runs")).toBe("./runs");
    expect(routeUrl("predictions", { run: "a/train", name: "predictions", width: 400 })).toBe(
      "./predictions?run=a%2Ftrain&name=predictions&width=400",
    );
    expect(routeUrl("gradient_histogram", { run: "<x>&y", name: "g", variable: "s/d/kernel", width: 10 })).toBe(
      "./gradient_histogram?run=%3Cx%3E%26y&name=g&variable=s%2Fd%2Fkernel&width=10",
    );
    expect(routeUrl("manifest", { run: "r", width: undefined })).toBe("./manifest?run=r");
  });
});

describe("errorMessage", () => {
  it("prefers the server's JSON error", () => {
    expect(errorMessage(404, "Not Found", '{"error": "unknown run: x"}')).toBe("unknown run: x");
    expect(errorMessage(500, "", "boom")).toBe("boom");
    expect(errorMessage(500, "Internal Server Error", "<html>..</html>")).toBe("HTTP 500 Internal Server Error");
    expect(errorMessage(502, "", "")).toBe("HTTP 502");
  });
});

describe("getJson", () => {
  it("fetches the contract URLs and caches", async () => {
    const urls: string[] = [];
    setFetcher(async (u) => {
      urls.push(u);
      return new Response(JSON.stringify({ runs: [] }), { status: 200 });
    });
    await api.runs();
    await api.runs();
    await api.gradients("r", "gradients", 300).catch(() => undefined);
    expect(urls).toEqual(["./runs", "./gradients?run=r&name=gradients&width=300"]);
  });
  it("raises ApiError with the server's message", async () => {
    setFetcher(async () => new Response('{"error": "missing run"}', { status: 400 }));
    await expect(api.manifest("")).rejects.toThrow(ApiError);
    await expect(api.manifest("")).rejects.toThrow("missing run");
  });
  it("raises on malformed JSON and on network errors", async () => {
    setFetcher(async () => new Response("{nope", { status: 200 }));
    await expect(api.runs()).rejects.toThrow(/Malformed JSON/);
    clearCache();
    setFetcher(async () => {
      throw new TypeError("Failed to fetch");
    });
    await expect(api.runs()).rejects.toThrow(/Network error: Failed to fetch/);
  });
});
