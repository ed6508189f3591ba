//! Per-conversation key/value cache of the decoder, owned by a session, never by the weights.

use candle_core::{DType, Tensor};

use crate::cpu::decode_attention::CachedRows;
use crate::error::Result;

/// Keys and values of one layer, `[1, kv_heads, len, head_dim]`, in a buffer that grows by
/// doubling so that appending a token does not copy the whole history.
#[derive(Debug, Clone, Default)]
struct LayerCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
}

impl LayerCache {
    /// A copy in buffers of its own, with room for `spare` more positions.
    fn deep_copy(&self, spare: usize) -> Result<LayerCache> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else {
            return Ok(LayerCache::default());
        };
        if self.len == 0 {
            return Ok(LayerCache::default());
        }
        let copy = |t: &Tensor| -> Result<Tensor> {
            let (b, h, _, d) = t.dims4()?;
            let fresh = Tensor::zeros((b, h, self.len + spare, d), t.dtype(), t.device())?;
            fresh.slice_set(&t.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            Ok(fresh)
        };
        Ok(LayerCache {
            k: Some(copy(k)?),
            v: Some(copy(v)?),
            len: self.len,
        })
    }

    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let add = k.dim(2)?;
        let needed = self.len + add;
        let capacity = self.k.as_ref().map(|t| t.dim(2)).transpose()?.unwrap_or(0);
        if needed > capacity {
            let new_cap = needed.max(capacity * 2).max(64);
            let grow = |old: &Option<Tensor>, like: &Tensor| -> Result<Tensor> {
                let (b, h, _, d) = like.dims4()?;
                let fresh = Tensor::zeros((b, h, new_cap, d), like.dtype(), like.device())?;
                if let Some(old) = old {
                    if self.len > 0 {
                        fresh.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    }
                }
                Ok(fresh)
            };
            self.k = Some(grow(&self.k, k)?);
            self.v = Some(grow(&self.v, v)?);
        }
        let (Some(kb), Some(vb)) = (&self.k, &self.v) else {
            return Err(candle_core::Error::Msg("kv cache buffer missing".into()).into());
        };
        kb.slice_set(&k.contiguous()?, 2, self.len)?;
        vb.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((kb.narrow(2, 0, needed)?, vb.narrow(2, 0, needed)?))
    }
}

/// The decoder's cache: one entry per layer, all of the same length.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// The dtype keys and values are kept in; `None` keeps the dtype they arrive in.
    storage: Option<DType>,
}

impl KvCache {
    /// An empty cache for `n_layers` layers.
    pub(crate) fn new(n_layers: usize) -> Self {
        KvCache {
            layers: vec![LayerCache::default(); n_layers],
            storage: None,
        }
    }

    /// An empty cache that keeps keys and values as `storage` whatever dtype they arrive in,
    /// and hands them back in the dtype of the caller's. An f16 cache halves what each decode
    /// step reads at depth (llama.cpp's default).
    pub(crate) fn with_storage(n_layers: usize, storage: DType) -> Self {
        KvCache {
            storage: Some(storage),
            ..KvCache::new(n_layers)
        }
    }

    /// Number of cached positions.
    pub(crate) fn len(&self) -> usize {
        self.layers.iter().map(|l| l.len).min().unwrap_or(0)
    }

    /// Forgets every position at or after `len` (rewinding a conversation). Buffers are kept.
    pub fn truncate(&mut self, len: usize) {
        for layer in &mut self.layers {
            layer.len = layer.len.min(len);
        }
    }

    /// An independent copy of the cached positions. A derived `clone` would share the buffers
    /// that appends write into, so two clones extended differently would overwrite each other.
    pub(crate) fn fork(&self) -> Result<KvCache> {
        Ok(KvCache {
            layers: self
                .layers
                .iter()
                .map(|l| l.deep_copy(64))
                .collect::<Result<Vec<_>>>()?,
            storage: self.storage,
        })
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.truncate(0);
    }

    /// Appends `k`, `v` (`[1, kv_heads, t, head_dim]`) to layer `layer` and returns the full
    /// keys and values so far.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let n = self.layers.len();
        let entry = self.layers.get_mut(layer).ok_or_else(|| {
            candle_core::Error::Msg(format!("kv cache has {n} layers, asked for layer {layer}"))
        })?;
        let Some(storage) = self.storage.filter(|s| *s != k.dtype()) else {
            return entry.append(k, v);
        };
        let (keys, values) = entry.append(&k.to_dtype(storage)?, &v.to_dtype(storage)?)?;
        Ok((keys.to_dtype(k.dtype())?, values.to_dtype(v.dtype())?))
    }
}

impl KvCache {
    /// Appends one position (`k`, `v`: `[kv_heads · head_dim]` f32) to layer `layer` and runs
    /// `f` on the whole key and value buffers, `[kv_heads, capacity, head_dim]` (f32, or f16
    /// for an f16 cache), with the capacity; positions `0..len()` are valid. For the CPU step
    /// kernels; `None` when the cache is neither f32 nor f16 on the CPU.
    pub(crate) fn append_step<R>(
        &mut self,
        layer: usize,
        kv_heads: usize,
        k: &[f32],
        v: &[f32],
        f: impl FnOnce(CachedRows<'_>, CachedRows<'_>, usize) -> R,
    ) -> Result<Option<R>> {
        let device = candle_core::Device::Cpu;
        let head_dim = k.len() / kv_heads;
        let kt = Tensor::from_slice(k, (1, kv_heads, 1, head_dim), &device)?;
        let vt = Tensor::from_slice(v, (1, kv_heads, 1, head_dim), &device)?;
        let (kt, vt) = match self.storage {
            Some(storage) => (kt.to_dtype(storage)?, vt.to_dtype(storage)?),
            None => (kt, vt),
        };
        let n = self.layers.len();
        self.layers
            .get_mut(layer)
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("kv cache has {n} layers, asked for layer {layer}"))
            })?
            .append(&kt, &vt)?;
        let entry = &self.layers[layer];
        let (Some(kb), Some(vb)) = (&entry.k, &entry.v) else {
            return Ok(None);
        };
        let capacity = kb.dim(2)?;
        let (ks, kl) = kb.storage_and_layout();
        let (vs, vl) = vb.storage_and_layout();
        use candle_core::{CpuStorage, Storage};
        let (Some((k0, k1)), Some((v0, v1))) = (kl.contiguous_offsets(), vl.contiguous_offsets())
        else {
            return Ok(None);
        };
        let rows = match (&*ks, &*vs) {
            (Storage::Cpu(CpuStorage::F32(kd)), Storage::Cpu(CpuStorage::F32(vd))) => {
                (CachedRows::F32(&kd[k0..k1]), CachedRows::F32(&vd[v0..v1]))
            }
            (Storage::Cpu(CpuStorage::F16(kd)), Storage::Cpu(CpuStorage::F16(vd))) => {
                (CachedRows::F16(&kd[k0..k1]), CachedRows::F16(&vd[v0..v1]))
            }
            _ => return Ok(None),
        };
        Ok(Some(f(rows.0, rows.1, capacity)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, D};

    #[test]
    fn appends_grow_and_truncate_rewinds() {
        let dev = Device::Cpu;
        let mut cache = KvCache::new(1);
        let step = |v: f32, t: usize| Tensor::full(v, (1, 2, t, 3), &dev).unwrap();
        let (k, _) = cache.append(0, &step(1.0, 50), &step(1.0, 50)).unwrap();
        assert_eq!(k.dims(), &[1, 2, 50, 3]);
        let (k, _) = cache.append(0, &step(2.0, 30), &step(2.0, 30)).unwrap();
        assert_eq!(k.dims(), &[1, 2, 80, 3]);
        let sums = k.sum(D::Minus1).unwrap().to_dtype(DType::F32).unwrap();
        let row = sums
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(row[49], 3.0);
        assert_eq!(row[50], 6.0);
        cache.truncate(10);
        assert_eq!(cache.len(), 10);
        let (k, _) = cache.append(0, &step(5.0, 1), &step(5.0, 1)).unwrap();
        assert_eq!(k.dims(), &[1, 2, 11, 3]);
        let last = k
            .narrow(2, 10, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(last.iter().all(|v| *v == 5.0));
    }

    #[test]
    fn an_f16_cache_stores_f16_and_answers_in_the_callers_dtype() {
        let dev = Device::Cpu;
        let mut cache = KvCache::with_storage(1, DType::F16);
        let k = Tensor::new(&[[[[1.0f32 / 3.0, 70000.0]]]], &dev).unwrap();
        let (keys, _) = cache.append(0, &k, &k).unwrap();
        assert_eq!(keys.dtype(), DType::F32);
        let got = keys.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Rounded to f16 on the way in: 1/3 to 11 bits, 70000 past f16's range to infinity.
        assert_eq!(got[0], half::f16::from_f32(1.0 / 3.0).to_f32());
        assert!(got[1].is_infinite());
        let seen = cache
            .append_step(0, 1, &[0.5, 0.25], &[2.0, 4.0], |k, v, _| match (k, v) {
                (CachedRows::F16(k), CachedRows::F16(v)) => (k.len(), v[2].to_f32()),
                _ => (0, 0.0),
            })
            .unwrap()
            .unwrap();
        assert_eq!(seen, (128, 2.0));
        assert_eq!(cache.fork().unwrap().storage, Some(DType::F16));
    }

    #[test]
    fn forks_extend_independently() {
        let dev = Device::Cpu;
        let step = |v: f32| Tensor::full(v, (1, 1, 1, 2), &dev).unwrap();
        let mut base = KvCache::new(1);
        base.append(0, &step(1.0), &step(1.0)).unwrap();
        let mut a = base.fork().unwrap();
        let mut b = base.fork().unwrap();
        a.append(0, &step(2.0), &step(2.0)).unwrap();
        b.append(0, &step(3.0), &step(3.0)).unwrap();
        base.append(0, &step(4.0), &step(4.0)).unwrap();
        let (k, _) = a.append(0, &step(5.0), &step(5.0)).unwrap();
        let values = k.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(values, [1.0, 1.0, 2.0, 2.0, 5.0, 5.0]);
    }
}
