//! Logits → next token id: greedy or seeded sampling with the usual filters, applied in the
//! order transformers applies them (repetition penalty, temperature, top-k, top-p, min-p).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// Always the most likely token (ties go to the lowest id, as `argmax` does).
    Greedy,
    /// Draw from the filtered, tempered distribution.
    Random {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Keep only the k most likely tokens.
        top_k: Option<usize>,
        /// Keep the smallest set of tokens whose probability reaches p.
        top_p: Option<f32>,
        /// Drop tokens less likely than `min_p` times the most likely one.
        min_p: Option<f32>,
    },
}

impl Sampling {
    /// Checks every parameter is in its domain.
    pub fn validate(&self) -> Result<()> {
        if let Sampling::Random {
            temperature,
            top_k,
            top_p,
            min_p,
        } = self
        {
            if !(temperature.is_finite() && *temperature > 0.0) {
                return Err(Error::InvalidOption {
                    name: "temperature",
                    reason: format!("{temperature} must be a positive number"),
                });
            }
            if *top_k == Some(0) {
                return Err(Error::InvalidOption {
                    name: "top-k",
                    reason: "0 keeps no token; use at least 1".into(),
                });
            }
            if let Some(p) = top_p {
                if !(*p > 0.0 && *p <= 1.0) {
                    return Err(Error::InvalidOption {
                        name: "top-p",
                        reason: format!("{p} must be in (0, 1]"),
                    });
                }
            }
            if let Some(p) = min_p {
                if !(0.0..=1.0).contains(p) {
                    return Err(Error::InvalidOption {
                        name: "min-p",
                        reason: format!("{p} must be in [0, 1]"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Chooses tokens; holds the random state of one generation.
pub(crate) struct Sampler {
    sampling: Sampling,
    repetition_penalty: f32,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded with `seed` (the same seed gives the same tokens).
    pub(crate) fn new(sampling: Sampling, repetition_penalty: f32, seed: u64) -> Result<Self> {
        sampling.validate()?;
        if !(repetition_penalty.is_finite() && repetition_penalty > 0.0) {
            return Err(Error::InvalidOption {
                name: "repeat-penalty",
                reason: format!("{repetition_penalty} must be a positive number (1 = off)"),
            });
        }
        Ok(Sampler {
            sampling,
            repetition_penalty,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// Picks the next token from `logits`; `context` are the ids seen so far (for the penalty).
    pub(crate) fn sample(&mut self, logits: &mut [f32], context: &[u32]) -> u32 {
        if self.repetition_penalty != 1.0 {
            apply_repetition_penalty(logits, context, self.repetition_penalty);
        }
        match &self.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Random {
                temperature,
                top_k,
                top_p,
                min_p,
            } => {
                let mut cands: Vec<(u32, f32)> = logits
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i as u32, *l / temperature))
                    .filter(|(_, l)| !l.is_nan())
                    .collect();
                if cands.is_empty() {
                    return argmax(logits);
                }
                cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                if let Some(k) = top_k {
                    cands.truncate((*k).max(1));
                }
                let max = cands[0].1;
                let mut probs: Vec<f32> = cands.iter().map(|(_, l)| (l - max).exp()).collect();
                normalize(&mut probs);
                if let Some(p) = top_p {
                    let mut acc = 0.0;
                    let mut keep = probs.len();
                    for (i, q) in probs.iter().enumerate() {
                        acc += q;
                        if acc >= *p {
                            keep = i + 1;
                            break;
                        }
                    }
                    probs.truncate(keep.max(1));
                    normalize(&mut probs);
                }
                if let Some(m) = min_p {
                    let cut = probs[0] * m;
                    let keep = probs.iter().take_while(|q| **q >= cut).count().max(1);
                    probs.truncate(keep);
                    normalize(&mut probs);
                }
                let r: f32 = self.rng.random();
                let mut acc = 0.0;
                for (i, q) in probs.iter().enumerate() {
                    acc += q;
                    if r < acc {
                        return cands[i].0;
                    }
                }
                cands[probs.len() - 1].0
            }
        }
    }
}

fn normalize(p: &mut [f32]) {
    let sum: f32 = p.iter().sum();
    if sum > 0.0 {
        p.iter_mut().for_each(|q| *q /= sum);
    }
}

/// Index of the largest logit; the first one on ties.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, l) in logits.iter().enumerate() {
        if *l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// CTRL-style penalty as transformers applies it: positive logits of seen tokens are divided
/// by the penalty, negative ones multiplied.
fn apply_repetition_penalty(logits: &mut [f32], context: &[u32], penalty: f32) {
    let mut seen = vec![false; logits.len()];
    for id in context {
        if let Some(s) = seen.get_mut(*id as usize) {
            *s = true;
        }
    }
    for (l, s) in logits.iter_mut().zip(seen) {
        if s {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(Sampling::Greedy, 1.0, 0).unwrap();
        assert_eq!(s.sample(&mut [0.0, 3.0, 3.0, 1.0], &[]), 1);
    }

    #[test]
    fn penalty_changes_the_choice() {
        let mut s = Sampler::new(Sampling::Greedy, 2.0, 0).unwrap();
        assert_eq!(s.sample(&mut [1.0, 3.0, 2.0], &[1]), 2);
        let mut l = [-1.0, 2.0];
        apply_repetition_penalty(&mut l, &[0, 1], 2.0);
        assert_eq!(l, [-2.0, 1.0]);
    }

    #[test]
    fn sampling_is_seeded_and_filtered() {
        let random = Sampling::Random {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
            min_p: None,
        };
        let logits = [5.0, 4.9, 4.8, -3.0];
        let draw = |seed| {
            let mut s = Sampler::new(random.clone(), 1.0, seed).unwrap();
            (0..50)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        let toks = draw(7);
        assert!(
            toks.iter().all(|t| *t < 2),
            "top-k 2 keeps ids 0 and 1: {toks:?}"
        );
        assert!(toks.contains(&0) && toks.contains(&1));
        let mut s = Sampler::new(
            Sampling::Random {
                temperature: 1.0,
                top_k: None,
                top_p: None,
                min_p: Some(0.5),
            },
            1.0,
            1,
        )
        .unwrap();
        for _ in 0..50 {
            assert_ne!(s.sample(&mut [5.0, 0.0, 4.9, -1.0], &[]), 1);
        }
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let bad = Sampling::Random {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            min_p: None,
        };
        assert!(Sampler::new(bad, 1.0, 0).is_err());
        assert!(Sampler::new(Sampling::Greedy, 0.0, 0).is_err());
        let bad = Sampling::Random {
            temperature: 1.0,
            top_k: None,
            top_p: Some(1.5),
            min_p: None,
        };
        assert!(bad.validate().is_err());
    }
}
