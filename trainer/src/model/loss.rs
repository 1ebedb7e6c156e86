//! Loss terms, per image, in nats (summed over pixels and latent dimensions).

use candle_core::{Tensor, D};

use super::{Likelihood, Model, ModelKind};

/// `-log p(x | logits)` per image: `(B, D) -> (B,)`.
///
/// Bernoulli: binary cross-entropy with logits, computed stably as
/// `max(l, 0) - x l + ln(1 + e^{-|l|})`. Gaussian: summed squared error of
/// `sigmoid(l)` (variance 1/2, constant left out).
pub fn recon_nll(
    logits: &Tensor,
    x: &Tensor,
    likelihood: Likelihood,
) -> candle_core::Result<Tensor> {
    // One op where it exists: both likelihoods on a GPU, Bernoulli on the CPU. The
    // CPU's Gaussian term keeps candle's composed ops, whose numbers the recorded
    // benchmarks and tests were made with (the op agrees to rounding).
    let dev = logits.device();
    let one_op = dev.is_cuda() || (dev.is_cpu() && likelihood == Likelihood::Bernoulli);
    match likelihood {
        _ if one_op => logits
            .contiguous()?
            .apply_op2(&x.contiguous()?, super::nll_op::RowNll(likelihood)),
        Likelihood::Bernoulli => {
            let softplus = (logits.relu()? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            (softplus - (x * logits)?)?.sum(D::Minus1)
        }
        Likelihood::Gaussian => {
            let mean = candle_nn::ops::sigmoid(logits)?;
            (mean - x)?.sqr()?.sum(D::Minus1)
        }
    }
}

/// `KL(N(mu, exp(logvar)) || N(0, I))` per image: `(B, L) -> (B,)`.
pub fn kl(mu: &Tensor, logvar: &Tensor) -> candle_core::Result<Tensor> {
    let t = ((logvar.exp()? + mu.sqr()?)? - logvar)?;
    ((t - 1.0)? * 0.5)?.sum(D::Minus1)
}

/// `log N(z; 0, I)` per row.
pub fn log_prior(z: &Tensor) -> candle_core::Result<Tensor> {
    let l = z.dim(D::Minus1)? as f64;
    (z.sqr()?.sum(D::Minus1)? * -0.5)? - 0.5 * l * (2.0 * std::f64::consts::PI).ln()
}

/// `log N(z; mu, exp(logvar))` per row, given the standardised `eps = (z - mu) / sigma`.
pub fn log_posterior(eps: &Tensor, logvar: &Tensor) -> candle_core::Result<Tensor> {
    let l = eps.dim(D::Minus1)? as f64;
    ((eps.sqr()? + logvar)?.sum(D::Minus1)? * -0.5)? - 0.5 * l * (2.0 * std::f64::consts::PI).ln()
}

/// The anomaly score, per image: the negative ELBO evaluated at `z = mu`,
/// i.e. `recon_nll(x, decoder(mu)) + KL(q(z|x) || p(z))` (for an AE: the
/// reconstruction term only). Deterministic, so the device can compute the same
/// number in fixed point. `x` is `(B, D)` in `[0, 1]`; returns `(B,)`.
pub fn anomaly_score(model: &Model, x: &Tensor) -> candle_core::Result<Tensor> {
    let (mu, logvar) = model.encode(x)?;
    let rec = recon_nll(&model.decode(&mu)?, x, model.config.likelihood)?;
    match model.config.kind {
        ModelKind::Vae => rec + kl(&mu, &logvar)?,
        ModelKind::Ae => Ok(rec),
    }
}
