//! # resnet-lrp
//!
//! Layer-wise Relevance Propagation for ONNX ResNets with the **Relevance Splitting** of
//! Otsuki et al., *Layer-Wise Relevance Propagation with Conservation Property for ResNet*
//! (ECCV 2024): at every residual addition the relevance is split between the shortcut
//! and the residual branch, so that the relevance of the pixels sums to the relevance the
//! explanation started from.
//!
//! The pipeline, in the order data flows:
//! [`Model::from_onnx_bytes`] (tract reads, types and declutters the graph; [`import`]
//! extracts our layer graph) → [`Explainer::forward`] (tract's fused plan, which also returns
//! the activations LRP reads) →
//! [`Explainer::explain`] (any class, composite, splitting variant) → [`heatmap`].
//!
//! ```no_run
//! use resnet_lrp::{Composite, Method, Model, Start, Target, Variant};
//! # fn main() -> resnet_lrp::Result<()> {
//! let bytes = std::fs::read("model.onnx").unwrap();
//! let model = Model::from_onnx_bytes(&bytes)?;
//! let mut explainer = model.explainer();
//! let input = ndarray::ArrayD::zeros(ndarray::IxDyn(&model.input().shape));
//! let acts = explainer.forward(input)?;
//! let method = Method::Lrp {
//!     composite: Composite::by_name("conserving", (vec![0.0], vec![1.0]))?,
//!     variant: Variant::FlowsSkip,
//! };
//! let e = explainer.explain(&acts, Target::Top1, Start::Probability, &method)?;
//! assert!(e.conservation_error() < 1e-4);
//! # Ok(()) }
//! ```

//! ## Module map, and the directions dependencies may take
//!
//! Each layer may use the layers above it, never those below; `lib.rs` only declares and
//! re-exports.
//!
//! | layer | modules | job |
//! |---|---|---|
//! | base | [`error`], [`geometry`], `glue` | errors by kind; window shapes; the only glue to tract's runtime (declutter, tensors, the panic guard) |
//! | data | [`graph`], [`rules`], [`split`], [`composite`] | the layer graph (data only); rules as data; relevance splitting; composites (rule per layer kind, registered by name) |
//! | import | [`import`] | tract's typed ops → layer graph, one function per op, and the canonizers |
//! | kernels | [`conv`], [`pool`] | convolutions on tract's kernels; pooling windows |
//! | engine | [`lrp`] | the forward pass that keeps what LRP reads, the relevance sweep, and the baselines (gradient methods, class activation maps) |
//! | input | [`preprocess`], [`metadata`], [`external`], [`model`] | image → input tensor; the preprocessing and class names a file carries; ONNX external data from side files; ONNX bytes → model (the one guarded load pipeline) |
//! | outputs | [`heatmap`], [`metrics`], [`stats`] | maps from relevance; insertion / deletion / ID; their statistics over images |
//! | application | [`request`], [`session`] | names → typed choices; a model plus the current input → predictions, explanations, evaluations |
//! | adapters | `wasm` (browser), the `resnet-lrp` binary (CLI), [`image_io`] (native files) | thin: parse, call [`session`], print or serialise |
//!
//! `rules.rs` (rules as data, each proven against a naive twin) and `split.rs` are the examples
//! to follow for new rules and splitting variants.

pub mod composite;
pub mod conv;
pub mod error;
pub mod external;
pub mod geometry;
pub(crate) mod glue;
pub mod graph;
pub mod heatmap;
#[cfg(not(target_arch = "wasm32"))]
pub mod image_io;
pub mod import;
pub mod lrp;
pub mod metadata;
pub mod metrics;
pub mod model;
pub mod pool;
pub mod preprocess;
pub mod request;
pub mod rules;
pub mod session;
pub mod split;
pub mod stats;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use composite::{Composite, MaxPoolRule, Params, COMPOSITES};
pub use error::{Error, Result};
pub use lrp::{Activations, Explainer, Explanation, ForwardPlan, Method, Start, Target};
pub use model::Model;
pub use preprocess::{InputSpec, Layout, Preprocess};
pub use rules::Rule;
pub use split::{Variant, VARIANTS};
