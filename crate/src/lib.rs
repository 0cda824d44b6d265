//! # resnet-lrp
//!
//! Layer-wise Relevance Propagation for ONNX ResNets with the **Relevance Splitting** of
//! Otsuki et al., *Layer-Wise Relevance Propagation with Conservation Property for ResNet*
//! (ECCV 2024): at every residual addition the relevance is split between the shortcut
//! and the residual branch, so that the relevance of the pixels sums to the relevance the
//! explanation started from.
//!
//! The pipeline, in the order data flows:
//! [`Model::from_onnx_bytes`] (tract reads, types and declutters the graph; [`graph`]
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

pub mod composite;
pub mod error;
pub mod graph;
pub mod heatmap;
#[cfg(not(target_arch = "wasm32"))]
pub mod image_io;
pub mod import;
pub mod kernels;
pub mod lrp;
pub mod metrics;
pub mod model;
pub mod options;
pub mod pool;
pub mod rules;
pub mod split;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use composite::{Composite, MaxPoolRule, Params, COMPOSITES};
pub use error::{Error, Result};
pub use lrp::{Activations, Explainer, Explanation, ForwardPlan, Method, Start, Target};
pub use model::{InputSpec, Layout, Model, Preprocess};
pub use rules::Rule;
pub use split::{Variant, VARIANTS};
