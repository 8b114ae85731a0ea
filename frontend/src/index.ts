// Entry point loaded by TensorBoard's plugin iframe:
//   data/plugin_entry.html -> import("./index.js").then((m) => void m.render())
import { createApp } from "./app";

export function render(): void {
  const root = document.createElement("div");
  root.id = "health-plugin";
  document.body.appendChild(root);
  createApp(root);
}
