// Route JSON shapes (see CONTRACT.md, "Plugin routes"). Numbers may arrive as
// the strings "NaN" / "Infinity" / "-Infinity" (non-finite floats), so every
// numeric field is typed as RawNumber and decoded with decode.ts.

export type RawNumber = number | string | null;

export type RunStatus = "healthy" | "unhealthy" | "no_data";

export interface Finding {
  kind: string;
  severity: "error" | "warning" | string;
  layer: string | null;
  first_step: RawNumber;
  last_step: RawNumber;
  evidence: Record<string, unknown>;
  message: string;
  suggestion: string;
  /** kind of the root-cause finding of the same run that explains this one */
  caused_by?: string | null;
}

export interface RunPredictionInfo {
  name: string;
  task: string;
  num_classes: RawNumber;
}

export interface RunGradientInfo {
  name: string;
  variables: string[];
}

export interface RunTrainModeInfo {
  name: string;
  /** paths of the layers that behave differently in training */
  layers: string[];
}

export interface RunInfo {
  run: string;
  status: RunStatus | string;
  findings: Finding[];
  predictions: RunPredictionInfo[];
  gradients: RunGradientInfo[];
  has_manifest: boolean;
  /** train-mode record families (Dropout, BatchNormalization...); absent from older servers */
  train_mode?: RunTrainModeInfo[];
  /** set when the server could not read or diagnose the run */
  error?: string;
  /** step and wall time (s) of the run's newest health record */
  last_step?: number | null;
  last_wall_time?: number | null;
}

export interface RunsResponse {
  runs: RunInfo[];
}

export interface RawSeries {
  steps: RawNumber[];
  values: RawNumber[];
}

export interface RawHistogram {
  edges: RawNumber[];
  steps: RawNumber[];
  counts: RawNumber[][];
  /**
   * Optional per-record edges, one row per step (regression `outputs`: the
   * range follows each batch). `edges` is then only the last record's.
   */
  step_edges?: RawNumber[][];
}

export interface PredictionsResponse {
  run: string;
  name: string;
  task: string;
  num_classes: RawNumber;
  from_logits: boolean | null;
  has_labels?: boolean;
  scalars: Record<string, RawSeries>;
  histograms: Record<string, RawHistogram>;
}

export interface GradientThresholds {
  vanishing_ratio: RawNumber;
  exploding_ratio: RawNumber;
  update_ratio_low: RawNumber;
  update_ratio_guideline: RawNumber;
}

export interface GradientsResponse {
  run: string;
  name: string;
  variables: string[];
  /** variable path -> shape */
  shapes?: Record<string, RawNumber[]>;
  steps: RawNumber[];
  matrix: Record<string, (RawNumber | null)[][]>;
  first_last_ratio: RawSeries;
  thresholds: GradientThresholds;
}

export interface GradientHistogramResponse extends RawHistogram {
  run: string;
  name: string;
  variable: string;
}

/** One layer of the train_mode route: its index entry and its series. */
export interface TrainModeLayer {
  path: string;
  class: string | null;
  kind: "dropout" | "noise" | "batchnorm" | "other" | string;
  rate?: RawNumber;
  /** the training flag its call received, as text: "True", "False", "None", "tensor" */
  flag?: string | null;
  caller?: string | null;
  trainable?: boolean | null;
  momentum?: RawNumber;
  /**
   * training, root_training, inference_by_caller (1/0); zero_in,
   * observed_zero_fraction, expected_zero_fraction, standard_error,
   * dropped_fraction, dropped_standard_error (share of nonzero inputs dropped),
   * changed_fraction (Dropout family); mean_change, variance_change
   * (BatchNormalization)
   */
  series: Record<string, RawSeries>;
}

export interface TrainModeResponse {
  run: string;
  name: string;
  layers: TrainModeLayer[];
}

export interface ManifestResponse {
  run: string;
  manifest: Record<string, unknown> | null;
}

/** Decoded numeric series: NaN / +-Infinity kept as JS numbers, null = missing. */
export interface Series {
  steps: number[];
  values: (number | null)[];
}

export interface Histogram {
  edges: number[];
  steps: number[];
  counts: number[][];
  /** per-step edges (aligned with steps) when the bins move from record to record */
  stepEdges?: number[][];
}

/** The scalar_tags route: scalar tags (health/ last) and the runs having scalars. */
export interface ScalarTagsResponse {
  tags: string[];
  runs: string[];
}

/** The compare route: tb_plugin.compare's document (schema tb-health-compare/1; see compare.py). */
export interface CompareRun {
  run: string;
  seed: string | null;
  final: RawNumber;
  excluded: string | null;
  /** with runs=1 */
  steps?: RawNumber[];
  values?: RawNumber[];
}

export interface CompareGroupFinal {
  n: number;
  mean: RawNumber;
  sd: RawNumber;
  ci_low: RawNumber;
  ci_high: RawNumber;
  median: RawNumber;
  iqm: RawNumber;
  min: RawNumber;
  max: RawNumber;
}

export interface CompareGroup {
  name: string;
  label: string;
  runs: CompareRun[];
  series: { steps: RawNumber[]; n: RawNumber[]; mean: RawNumber[]; low: RawNumber[]; high: RawNumber[] };
  final: CompareGroupFinal;
}

export interface ComparePair {
  a: string;
  b: string;
  difference: RawNumber;
  ci_low: RawNumber;
  ci_high: RawNumber;
  p_value: RawNumber;
  hedges_g: RawNumber;
  p_a_beats_b: RawNumber;
  p_a_beats_b_ci_low: RawNumber;
  p_a_beats_b_ci_high: RawNumber;
  min_detectable_sd: RawNumber;
  seeds_needed: number | null;
  paired: null | { n: number; difference: RawNumber; ci_low: RawNumber; ci_high: RawNumber; p_value: RawNumber };
  health_differs: boolean;
  verdict: { outcome: "a_better" | "b_better" | "no_detectable_difference" | "too_few_runs" | string; text: string };
}

export interface CompareHealthGroup {
  runs: number;
  with_records: number;
  kinds: Record<string, { runs: number; severity: string; message: string }>;
}

export interface CompareResponse {
  schema: string;
  tag: string;
  grouping: { by: "regex" | "hparams" | "manifest" | string; regex: string | null; run_filter: string | null };
  final: { method: "last" | "best" | "mean_last" | string; k: number | null; higher_is_better: boolean; direction: string };
  band: { kind: string; level: number };
  health: { compared: boolean; differs: boolean; warnings: string[]; groups: Record<string, CompareHealthGroup> };
  groups: CompareGroup[];
  pairs: ComparePair[];
  notes: string[];
}
