/** A method name: a splitting variant (LRP) or a baseline (`capabilities().methods`). */
export type MethodName =
  | "flows_skip" | "flows_skip_simple" | "latest" | "simple" | "conventional"
  | "gradient" | "ig" | "guided_backprop" | "gradcam" | "scorecam" | "random";

/** A splitting variant (`capabilities().variants`). */
export type VariantName = "flows_skip" | "flows_skip_simple" | "latest" | "simple" | "conventional";

/** A composite name (`capabilities().composites`). */
export type CompositeName =
  | "conserving" | "reference" | "epsilon_plus" | "epsilon_gamma_box" | "epsilon_plus_flat" | "epsilon_alpha2_beta1";

/** Options of `Explainer.explain`; every field is optional. */
export interface ExplainOptions {
  /** Class index; absent: the top-1 class. */
  target?: number;
  /** What is computed (default: LRP with `variant`); `"lrp"` is the older spelling of LRP. */
  method?: MethodName | "lrp";
  /** LRP composite (default `"conserving"`). */
  composite?: CompositeName;
  /** Splitting variant when `method` is `"lrp"` or absent (default `"flows_skip"`). */
  variant?: VariantName;
  /** Start relevance: the target's softmax probability (default) or its logit. */
  start?: "prob" | "probability" | "logit";
  /** Heat quantization levels of the returned map (0 or 1: off). */
  quantize?: number;
  /** The returned map averaged over cell × cell pixels before quantization (0, 1 or absent: per pixel); display only. */
  cell?: number;
  /** Rule parameters over the composite's own. */
  epsilon?: number;
  gamma?: number;
  alpha?: number;
  beta?: number;
}

/** Options of `Explainer.evaluate`: an explanation's, plus the protocol's. */
export interface EvaluateOptions extends ExplainOptions {
  /** Patch size in pixels (default 1). */
  block?: number;
  /** Patches added or removed per image of a curve (default 500). */
  step?: number;
  /** Seed of the random ranking. */
  seed?: number;
}

/** Σ R at one node of the relevance sweep. */
export interface LedgerEntry { node: string; kind: string; relevance: number }

/** What happened at one residual addition. */
export interface BlockEntry {
  node: string;
  projection: boolean;
  relevance: number;
  shortcut: number;
  main: number;
  block_input: number | null;
}

/** What `Explainer.explain` returns; the maps are read with `relevance()` and `map()`. */
export interface ExplainSummary {
  target: number;
  startRelevance: number;
  inputRelevanceSum: number;
  /** |Σ R_input − R_start| / |R_start|; `null` for the baselines, which are not meant to conserve. */
  conservationError: number | null;
  ledger: LedgerEntry[];
  blocks: BlockEntry[];
  /** Size of `map()`. */
  width: number;
  height: number;
  /** For LRP: what the composite did with the model's BatchNorm. */
  batchnorm: string | null;
}

/** What `setImage` and `setInput` return. */
export interface Prediction {
  logits: number[];
  probabilities: number[];
  /** The five most probable classes, best first. */
  top: { class: number; probability: number }[];
}

/** The preprocessing of `setImage`: `byte / 255 × scale`, then `(x − mean) / std` per channel. */
export interface Preprocess {
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
  bgr: boolean;
}

/** The model's input. */
export interface InputSpec {
  name: string;
  shape: number[];
  layout: "NCHW" | "NHWC";
  channels: number;
  height: number;
  width: number;
  /** The model leaves height and width open; they were set to 224. */
  size_pinned: boolean;
}

/** How a residual addition was read. */
export interface ResidualInfo {
  node: string;
  /** Input slot of the shortcut; null when both inputs pass through as many weighted layers. */
  shortcut_input: number | null;
  /** The node the shortcut reads (null as above). */
  shortcut: string | null;
  /** The node the main branch reads (null as above). */
  main: string | null;
  projection: boolean;
  /** What each splitting variant gives the shortcut here: [variant, description]. */
  splits: [VariantName, string][];
}

/** A squeeze-excitation gate: a constant scale of its branch for LRP. */
export interface GateInfo { node: string; branch: string; gate: string }

/** What `Explainer.info` returns. */
export interface ModelInfo {
  input: InputSpec;
  numClasses: number;
  /** BatchNorm layers the file keeps apart from its convolutions (0: none, or folded at export). */
  batchnormKept: number;
  layers: { name: string; kind: string; shape: number[] }[];
  /** Each residual addition, in order. */
  residuals: ResidualInfo[];
  /** Each squeeze-excitation gate, in order. */
  gates: GateInfo[];
  /** The preprocessing in use. */
  preprocess: Preprocess;
  /** What the file says about itself (`metadata_props`), each field null when absent. */
  metadata: {
    preprocess: Preprocess | null;
    resize: "full" | "stretch" | "shorter_side" | null;
    classes: string[] | null;
  };
}

/** One curve of the insertion / deletion protocol. */
export interface Curve {
  auc: number;
  /** The target's probability on every image of the curve. */
  probabilities: number[];
  /** The fraction of the pixels shown in every image. */
  kept: number[];
}

/** What `Explainer.evaluate` returns. */
export interface Evaluation {
  target: number;
  probability: number;
  insertion: Curve;
  deletion: Curve;
  /** Insertion − Deletion. */
  id: number;
  forwardPasses: number;
}

/** What `capabilities()` returns. */
export interface Capabilities {
  version: string;
  methods: MethodName[];
  variants: VariantName[];
  composites: CompositeName[];
  defaults: {
    method: string;
    composite: CompositeName;
    variant: VariantName;
    start: string;
    evalQuantize: number;
    block: number;
    step: number;
    igSteps: number;
    scoreCamChannels: number;
  };
  preprocess: Preprocess;
  limits: { maxModelBytes: number };
  threads: boolean;
}
