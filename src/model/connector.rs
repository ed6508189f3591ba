//! Connector: vision features `[n, N², D_v]` → text-space image tokens `[n, N²/s², D_t]`.
//!
//! Ref: transformers `SmolVLMConnector` (pixel_shuffle + modality_projection).

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::model::layers::Linear;
use crate::weights::Weights;

/// Pixel shuffle (space-to-depth by `s`) followed by a bias-free projection.
pub(crate) struct Connector {
    proj: Linear,
    scale_factor: usize,
}

impl Connector {
    /// Loads `modality_projection.proj` under `w` (`model.connector`).
    pub(crate) fn load(
        w: &Weights,
        vision_dim: usize,
        text_dim: usize,
        scale_factor: usize,
    ) -> Result<Self> {
        let in_dim = vision_dim * scale_factor * scale_factor;
        let proj = Linear::load(
            &w.pp("modality_projection").pp("proj"),
            in_dim,
            text_dim,
            false,
        )?;
        Ok(Connector { proj, scale_factor })
    }

    /// `xs`: `[n, N², D_v]` → `[n, N²/s², D_t]`.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.proj.forward(&pixel_shuffle(xs, self.scale_factor)?)
    }
}

/// Space-to-depth: token `(h, w)` of an `N×N` grid goes to output token
/// `(h/s)·(N/s) + w/s`, channel block `(h%s)·s + (w%s)`.
///
/// This is the closed form of transformers' view/permute sequence; swapping the roles of `h%s`
/// and `w%s` still runs but scrambles the features.
fn pixel_shuffle(xs: &Tensor, s: usize) -> Result<Tensor> {
    let (n, seq, d) = xs.dims3()?;
    let side = (seq as f64).sqrt() as usize;
    if side * side != seq || !side.is_multiple_of(s) {
        return Err(Error::InvalidOption {
            name: "vision features",
            reason: format!("{seq} tokens do not form a square grid divisible by {s}"),
        });
    }
    let g = side / s;
    Ok(xs
        .reshape((n, g, s, g, s, d))?
        .permute((0, 1, 3, 2, 4, 5))?
        .reshape((n, g * g, s * s * d))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn shuffle_matches_the_closed_form() {
        let (side, s, d) = (4usize, 2usize, 3usize);
        let data: Vec<f32> = (0..side * side * d).map(|v| v as f32).collect();
        let xs = Tensor::from_vec(data, (1, side * side, d), &Device::Cpu).unwrap();
        let out = pixel_shuffle(&xs, s).unwrap();
        assert_eq!(out.dims(), &[1, 4, 12]);
        let out = out.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        for h in 0..side {
            for w in 0..side {
                for c in 0..d {
                    let t = (h / s) * (side / s) + w / s;
                    let ch = ((h % s) * s + (w % s)) * d + c;
                    assert_eq!(out[t][ch], ((h * side + w) * d + c) as f32);
                }
            }
        }
    }
}
