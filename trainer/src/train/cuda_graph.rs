//! Training steps on an NVIDIA GPU as captured CUDA graphs.
//!
//! Even with the fused kernels (`crate::cuda`) a step of these small networks launches
//! about a hundred kernels, and the host's cost per launch (candle's bookkeeping, the
//! driver call) exceeds the GPU's time for most of them. So for each batch size the
//! step is captured once as a CUDA graph and afterwards replayed with one launch:
//!
//! * The first step of a batch size runs eagerly, with candle's capture cache on, so
//!   that the shapes' small host-to-device uploads are cached (capture forbids them).
//! * The second is captured and then launched.
//! * Every later one uploads its rows and noise into the graph's input tensors, its
//!   Adam bias corrections into Adam's schedule, launches the graph and reads back the
//!   two loss terms.
//!
//! Everything that changes between steps lives in device memory at fixed addresses, so
//! a replay is the same computation as the eager step (same kernels, same order). Steps
//! whose inputs need host work (augmentation shifts, denoising faults) or whose KL
//! weight changes (warm-up) stay eager. If a capture fails, the run says why in
//! [`Trainer::graph_note`] and goes on eagerly.

use std::collections::HashMap;

use candle_core::cuda_backend::cudarc::driver::{sys, CudaGraph};
use candle_core::cuda_backend::WrapErr;
use candle_core::{DType, Device, Tensor};

use super::{batch_loss, repeat_batch, Adam, BatchPlan, Trainer};
use crate::cuda::Upload;
use crate::model::Model;

/// One batch size's captured step and the tensors it reads and writes.
pub struct StepGraph {
    /// The batch's training rows, `(len,)` u32.
    rows: Tensor,
    /// The batch's noise, `(len * draws, latent)`.
    eps: Tensor,
    /// The batch's summed reconstruction and KL terms, `(2,)`.
    terms: Tensor,
    /// Whether the eager warm-up step has run.
    warmed: bool,
    graph: Option<CudaGraph>,
}

/// The captured steps by batch size.
#[derive(Default)]
pub struct StepGraphs(HashMap<usize, StepGraph>);

impl StepGraph {
    fn new(device: &Device, len: usize, draws: usize, latent: usize) -> candle_core::Result<Self> {
        Ok(Self {
            rows: Tensor::zeros(len, DType::U32, device)?,
            eps: Tensor::zeros((len * draws, latent), DType::F32, device)?,
            terms: Tensor::zeros(2, DType::F32, device)?,
            warmed: false,
            graph: None,
        })
    }
}

/// The step itself, reading the graph's inputs and writing its terms: the same ops as
/// `Trainer::candle_step` without augmentation or faults. Nothing it creates outlives
/// it (a captured graph must free what it allocates).
fn step_body(
    model: &Model,
    adam: &Adam,
    train: &Tensor,
    g: &StepGraph,
    draws: usize,
    beta: f64,
) -> candle_core::Result<()> {
    let x = repeat_batch(&train.index_select(&g.rows, 0)?, draws)?;
    let (total, rec, kl) = batch_loss(model, &x, &x, &g.eps, beta)?;
    let grads = total.backward()?;
    adam.apply_in_place(&grads)?;
    g.terms.slice_set(&Tensor::stack(&[&rec, &kl], 0)?, 0, 0)
}

impl Trainer {
    /// Whether this batch can run as a graph (see the module docs).
    pub(super) fn graph_fits(&self, train: &Tensor, plan: &BatchPlan) -> bool {
        self.cuda_graphs
            && train.device().is_cuda()
            && plan.shifts.is_empty()
            && plan.faults.is_empty()
            && self.cfg.warmup_epochs <= 0.0
    }

    /// One training step through the batch size's graph; returns the summed
    /// reconstruction and KL terms (each the mean over the noise draws).
    pub(super) fn graph_step(
        &mut self,
        train: &Tensor,
        plan: &BatchPlan,
    ) -> candle_core::Result<(f64, f64)> {
        let Device::Cuda(cuda) = train.device() else {
            candle_core::bail!("CUDA graphs need a CUDA device");
        };
        let (len, draws, latent) = (plan.rows.len(), plan.draws, self.model.config.latent);
        let beta = self.cfg.beta;
        let mut g = match self.graphs.0.remove(&len) {
            Some(g) => g,
            None => StepGraph::new(train.device(), len, draws, latent)?,
        };
        let mut laps = super::profile::laps(self.profile.is_some(), train.device())?;
        self.adam.begin_step()?;
        g.rows.inplace_op1(&Upload(plan.rows))?;
        g.eps.inplace_op1(&Upload(plan.eps))?;
        let batch = super::profile::lap(&mut laps)?;
        match &g.graph {
            Some(graph) => graph.launch().w()?,
            None if !g.warmed => {
                let _cache = cuda.enable_cuda_graph_htod_cache();
                step_body(&self.model, &self.adam, train, &g, draws, beta)?;
                g.warmed = true;
            }
            None => {
                let stream = cuda.cuda_stream();
                let _cache = cuda.enable_cuda_graph_htod_cache();
                stream
                    .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED)
                    .w()?;
                let body = step_body(&self.model, &self.adam, train, &g, draws, beta);
                let captured = stream.end_capture(sys::CUgraphInstantiate_flags(0)).w();
                match (body, captured) {
                    (Ok(()), Ok(Some(graph))) => {
                        graph.launch().w()?;
                        g.graph = Some(graph);
                    }
                    (body, captured) => {
                        // Nothing ran: take this step eagerly, and the rest too.
                        let why = match (body, captured) {
                            (Err(e), _) | (_, Err(e)) => e.to_string(),
                            _ => "the capture recorded no work".to_string(),
                        };
                        self.graph_note = Some(format!(
                            "CUDA graph capture failed for batches of {len}, training \
                             eagerly: {why}"
                        ));
                        self.cuda_graphs = false;
                        step_body(&self.model, &self.adam, train, &g, draws, beta)?;
                    }
                }
            }
        }
        let replay = super::profile::lap(&mut laps)?;
        let terms = match g.terms.to_vec1::<f32>()?[..] {
            [rec, kl] => (f64::from(rec) / draws as f64, f64::from(kl) / draws as f64),
            _ => candle_core::bail!("the loss terms are two numbers"),
        };
        let readback = super::profile::lap(&mut laps)?;
        if let Some(p) = self.profile.as_mut() {
            p.add(&super::StepProfile {
                steps: 1,
                batch,
                graph: replay,
                readback,
                ..Default::default()
            });
        }
        self.graphs.0.insert(len, g);
        Ok(terms)
    }
}
