import { describe, expect, it } from "vitest";
import {
  checkOutput,
  initializerText,
  normaliseManifest,
  optimizerText,
  outputLayer,
  tinyInit,
  totalParams,
} from "../src/manifest";

// The manifest of demo_logs/seed000_relu_logits/train, as the route returns it.
const SEED000 = {
  layers: [
    {
      activation: "elu",
      bias_initializer: { class_name: "Zeros", config: {}, module: "keras.initializers", registered_name: null },
      class: "Dense",
      kernel_initializer: { class_name: "GlorotUniform", config: { seed: null }, module: "keras.initializers" },
      name: "hidden1",
      params: 28896,
      trainable_params: 28896,
    },
    { activation: null, bias_initializer: null, class: "Dropout", kernel_initializer: null, name: "dropout1", params: 0, trainable_params: 0 },
    {
      activation: "relu",
      bias_initializer: { class_name: "Zeros", config: {} },
      class: "Dense",
      kernel_initializer: { class_name: "GlorotUniform", config: { seed: null } },
      name: "logits",
      params: 679,
      trainable_params: 679,
    },
  ],
  loss: { class: "SparseCategoricalCrossentropy", from_logits: true, name: "sparse_categorical_crossentropy" },
  model: "seed000",
  optimizer: { class: "RMSprop", learning_rate: 0.10000000149011612 },
  output_layer: "logits",
  versions: { keras: "3.15.1", tb_plugin: "0.1.0", tensorflow: "2.21.0" },
};

const tinyLayer = (name: string, activation: string | null) => ({
  name,
  class: "Dense",
  activation,
  kernel_initializer: { class_name: "RandomNormal", config: { mean: 0.0, stddev: 0.001, seed: null } },
  bias_initializer: { class_name: "RandomNormal", config: { mean: 0.0, stddev: 0.001 } },
  params: 17,
  trainable_params: 17,
});

describe("manifest", () => {
  it("normalises the route's manifest", () => {
    const m = normaliseManifest(SEED000);
    expect(m).not.toBeNull();
    expect(m?.layers.map((l) => [l.name, l.cls, l.activation, l.kernelInit])).toEqual([
      ["hidden1", "Dense", "elu", "GlorotUniform"],
      ["dropout1", "Dropout", null, null],
      ["logits", "Dense", "relu", "GlorotUniform"],
    ]);
    expect(m?.loss).toEqual({ cls: "SparseCategoricalCrossentropy", name: "sparse_categorical_crossentropy", fromLogits: true });
    expect(optimizerText(m!)).toBe("RMSprop, lr 0.1");
    expect(totalParams(m!)).toBe(29575);
    expect(m?.versions).toContainEqual(["keras", "3.15.1"]);
    expect(outputLayer(m!)?.name).toBe("logits");
  });
  it("tolerates junk", () => {
    for (const x of [null, 3, "x", []]) expect(normaliseManifest(x)).toBeNull();
    const m = normaliseManifest({ model: "<b>x</b>", layers: [null, 3, { name: 5 }], loss: "no", versions: { a: {} } });
    expect(m?.layers.length).toBe(1);
    expect(m?.layers[0].name).toBe("?");
    expect(m?.loss).toBeNull();
    expect(m?.versions).toEqual([]);
    expect(checkOutput(m!).problem).toBeNull();
    expect(checkOutput(normaliseManifest({ layers: [] })!).layer).toBeNull();
  });
  it("flags ReLU on the logits of a from_logits=True loss (seed 000's bug)", () => {
    const c = checkOutput(normaliseManifest(SEED000)!);
    expect(c.activation).toBe("relu");
    expect(c.fromLogits).toBe(true);
    expect(c.problem).toMatch(/relu on the logits/);
  });
  it("accepts linear logits and flags the other mismatches like the diagnosis", () => {
    const withOut = (activation: string | null, fromLogits: boolean | null, loss = "SparseCategoricalCrossentropy") =>
      checkOutput(
        normaliseManifest({
          ...SEED000,
          layers: [{ ...SEED000.layers[2], activation }],
          loss: { class: loss, name: "", from_logits: fromLogits },
        })!,
      ).problem;
    expect(withOut("linear", true)).toBeNull();
    expect(withOut(null, true)).toBeNull();
    expect(withOut("softmax", false)).toBeNull();
    expect(withOut("softmax", true)).toMatch(/applied twice/);
    expect(withOut("linear", false)).toMatch(/expects probabilities/);
    expect(withOut("softmax", null, "BinaryCrossentropy")).toMatch(/always 1/);
    expect(withOut("relu", true, "MeanSquaredError")).toBeNull();
  });
  it("spots a tiny kernel initialiser (seed 002's bug)", () => {
    const m = normaliseManifest({ layers: [tinyLayer("W", "relu"), { ...SEED000.layers[0] }] })!;
    expect(m.layers[0].kernelInit).toBe("RandomNormal(stddev=0.001)");
    expect(m.layers[0].kernelScale).toBe(0.001);
    expect(tinyInit(m.layers[0])).toBe(true);
    expect(tinyInit(m.layers[1])).toBe(false);
  });
  it("initialiser text", () => {
    expect(initializerText(null)).toBeNull();
    expect(initializerText("he_normal")).toBe("he_normal");
    expect(initializerText({ class_name: "VarianceScaling", config: { scale: 2, mode: "fan_in", seed: 3 } })).toBe(
      "VarianceScaling(scale=2, mode=fan_in)",
    );
    expect(initializerText({ class_name: "RandomUniform", config: { minval: -0.05, maxval: 0.05 } })).toBe(
      "RandomUniform(minval=-0.05, maxval=0.05)",
    );
  });
});
