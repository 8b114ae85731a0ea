// The model manifest (route `manifest?run=R`, written once per run by
// HealthCallback): normalised into a typed shape and checked for the two
// configuration mistakes a glance at it can reveal. Pure: no DOM.

import { decodeNumber } from "./decode";
import { formatShort } from "./format";

export interface ManifestLayer {
  name: string;
  cls: string;
  activation: string | null;
  kernelInit: string | null; // "GlorotUniform", "RandomNormal(stddev=0.001)"
  biasInit: string | null;
  /** the initialiser's scale (stddev / maxval / limit ...) when it has one */
  kernelScale: number | null;
  params: number | null;
  trainable: number | null;
}

export interface Manifest {
  model: string;
  layers: ManifestLayer[];
  outputLayer: string | null;
  loss: { cls: string; name: string; fromLogits: boolean | null } | null;
  optimizer: { cls: string; learningRate: number | null } | null;
  versions: [string, string][];
}

function str(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

function num(v: unknown): number | null {
  const n = decodeNumber(v);
  return n !== null && Number.isFinite(n) ? n : null;
}

const SCALE_KEYS = ["stddev", "scale", "maxval", "limit", "value", "gain"];

/** "RandomNormal(stddev=0.001)" from a Keras initialiser config; null when absent. */
export function initializerText(init: unknown): string | null {
  if (init === null || init === undefined) return null;
  if (typeof init === "string") return init;
  if (typeof init !== "object") return null;
  const o = init as Record<string, unknown>;
  const name = str(o.class_name) ?? str(o.class) ?? str(o.name) ?? "?";
  const cfg = o.config && typeof o.config === "object" ? (o.config as Record<string, unknown>) : {};
  const parts: string[] = [];
  for (const [k, v] of Object.entries(cfg)) {
    // seeds say nothing about the scale; a zero mean is the default
    if (v === null || v === undefined || k === "seed" || (k === "mean" && v === 0)) continue;
    if (typeof v === "number") parts.push(`${k}=${formatShort(v)}`);
    else if (typeof v === "string" || typeof v === "boolean") parts.push(`${k}=${String(v)}`);
  }
  return parts.length ? `${name}(${parts.join(", ")})` : name;
}

/** The scale of an initialiser (stddev, maxval, ...), when its config has one. */
export function initializerScale(init: unknown): number | null {
  if (!init || typeof init !== "object") return null;
  const cfg = (init as Record<string, unknown>).config;
  if (!cfg || typeof cfg !== "object") return null;
  const c = cfg as Record<string, unknown>;
  for (const k of SCALE_KEYS) {
    const n = num(c[k]);
    if (n !== null) {
      // Constant(value=0.0) is a legitimate bias initialiser, and a uniform's
      // minval/maxval pair is symmetric: the magnitude is what matters
      return Math.abs(n);
    }
  }
  return null;
}

/** Normalises the route's manifest; null when it is not an object. */
export function normaliseManifest(raw: unknown): Manifest | null {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return null;
  const m = raw as Record<string, unknown>;
  const layers: ManifestLayer[] = (Array.isArray(m.layers) ? m.layers : [])
    .filter((l): l is Record<string, unknown> => !!l && typeof l === "object")
    .map((l) => ({
      name: str(l.name) ?? "?",
      cls: str(l.class) ?? "?",
      activation: str(l.activation),
      kernelInit: initializerText(l.kernel_initializer),
      biasInit: initializerText(l.bias_initializer),
      kernelScale: initializerScale(l.kernel_initializer),
      params: num(l.params),
      trainable: num(l.trainable_params),
    }));
  const loss = m.loss && typeof m.loss === "object" ? (m.loss as Record<string, unknown>) : null;
  const opt = m.optimizer && typeof m.optimizer === "object" ? (m.optimizer as Record<string, unknown>) : null;
  const versions =
    m.versions && typeof m.versions === "object"
      ? Object.entries(m.versions as Record<string, unknown>)
          .filter(([, v]) => typeof v === "string" || typeof v === "number")
          .map(([k, v]) => [k, String(v)] as [string, string])
      : [];
  return {
    model: str(m.model) ?? "",
    layers,
    outputLayer: str(m.output_layer),
    loss: loss
      ? {
          cls: str(loss.class) ?? str(loss.name) ?? "?",
          name: str(loss.name) ?? "",
          fromLogits: typeof loss.from_logits === "boolean" ? loss.from_logits : null,
        }
      : null,
    optimizer: opt ? { cls: str(opt.class) ?? "?", learningRate: num(opt.learning_rate) } : null,
    versions,
  };
}

/** The output layer: the one named by output_layer, else the last layer. */
export function outputLayer(m: Manifest): ManifestLayer | null {
  const named = m.outputLayer ? m.layers.filter((l) => l.name === m.outputLayer) : [];
  if (named.length) return named[named.length - 1];
  return m.layers.length ? m.layers[m.layers.length - 1] : null;
}

// Mirrors the diagnosis' output_activation_mismatch rule (tb_plugin/diagnosis.py).
const LINEAR = new Set(["", "linear", "none", "identity"]);
const PROBABILITY = new Set(["softmax", "sigmoid", "log_softmax"]);
const CLASS_ACTIVATION: Record<string, string> = { ReLU: "relu", Softmax: "softmax", ELU: "elu", LeakyReLU: "leaky_relu" };
const PROB_LOSSES: Record<string, "binary" | "categorical"> = {
  binarycrossentropy: "binary",
  binary_crossentropy: "binary",
  binaryfocalcrossentropy: "binary",
  binary_focal_crossentropy: "binary",
  categoricalcrossentropy: "categorical",
  categorical_crossentropy: "categorical",
  sparsecategoricalcrossentropy: "categorical",
  sparse_categorical_crossentropy: "categorical",
  categoricalfocalcrossentropy: "categorical",
  categorical_focal_crossentropy: "categorical",
};

export interface OutputCheck {
  layer: ManifestLayer | null;
  /** the output activation as applied ("linear" when none) */
  activation: string;
  lossName: string;
  fromLogits: boolean | null;
  /** null when the output activation and the loss agree (or nothing is known) */
  problem: string | null;
}

/** Output activation against the loss's from_logits. */
export function checkOutput(m: Manifest): OutputCheck {
  const layer = outputLayer(m);
  let act = layer?.activation ?? null;
  if (act === null && layer && CLASS_ACTIVATION[layer.cls]) act = CLASS_ACTIVATION[layer.cls];
  const a = (act ?? "linear").toLowerCase();
  const loss = m.loss;
  const lossName = loss ? loss.cls || loss.name || "loss" : "–";
  const fromLogits = loss ? loss.fromLogits : null;
  let family: "binary" | "categorical" | null = null;
  for (const k of [loss?.cls, loss?.name]) {
    if (k && PROB_LOSSES[k.toLowerCase()]) {
      family = PROB_LOSSES[k.toLowerCase()];
      break;
    }
  }
  let problem: string | null = null;
  if (family && fromLogits === true && !LINEAR.has(a)) {
    problem = PROBABILITY.has(a)
      ? `${act} output + from_logits=True: ${act} is applied twice`
      : `${act} on the logits of a from_logits=True loss: logits cannot go negative`;
  } else if (family && fromLogits === false && !PROBABILITY.has(a)) {
    problem = `${LINEAR.has(a) ? "linear" : act} output but from_logits=False: the loss expects probabilities`;
  } else if (family === "binary" && a === "softmax") {
    problem = "softmax before a binary cross-entropy: on one unit it is always 1";
  }
  return { layer, activation: act ?? "linear", lossName, fromLogits, problem };
}

/** Kernel initialisers whose scale is this small make the signal (and gradients) vanish. */
export const TINY_INIT_SCALE = 0.01;

/** Whether a layer's kernel initialiser has a suspiciously small scale. */
export function tinyInit(l: ManifestLayer): boolean {
  return l.kernelScale !== null && l.kernelScale > 0 && l.kernelScale < TINY_INIT_SCALE;
}

/** "Adam, lr 0.01" */
export function optimizerText(m: Manifest): string {
  if (!m.optimizer) return "–";
  const lr = m.optimizer.learningRate;
  return lr === null ? m.optimizer.cls : `${m.optimizer.cls}, lr ${formatShort(lr)}`;
}

/** Total parameters (sum over layers; null when unknown). */
export function totalParams(m: Manifest): number | null {
  const ps = m.layers.map((l) => l.params).filter((p): p is number => p !== null);
  return ps.length ? ps.reduce((a, b) => a + b, 0) : null;
}
