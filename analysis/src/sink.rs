//! Attention-sink statistics (definitions: `../shared/notes/metrics.md`).

use burn::tensor::Tensor;

/// Mean attention probability on key 0, per head, over the batch and the queries
/// `min_query..seq` (F-Attn of Qiu et al. 2025 with the first `min_query` queries excluded; query
/// 0 can only attend to key 0, so `min_query = 1` is the usual choice).
///
/// # Shapes
/// - attn: `[batch, heads, seq, seq]` → one value per head
pub fn first_token_attention(attn: &Tensor<4>, min_query: usize) -> Vec<f64> {
    let [b, h, t, _] = attn.dims();
    assert!(min_query < t, "min_query {min_query} leaves no query of {t}");
    let col = attn.clone().slice([0..b, 0..h, min_query..t, 0..1]); // [b, h, q, 1]
    let per_head = col.mean_dims(&[0, 2]).reshape([h]);
    per_head.into_data().try_to_vec::<f32>().expect("f32 tensor").into_iter().map(f64::from).collect()
}

/// The share of attention uniform causal attention would put on key 0, averaged over queries
/// `min_query..seq`: `mean_i 1/(i+1)`, the chance level beside F-Attn.
pub fn chance_first_token(seq: usize, min_query: usize) -> f64 {
    let n = (seq - min_query) as f64;
    (min_query..seq).map(|i| 1.0 / (i as f64 + 1.0)).sum::<f64>() / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn hand_built_map() {
        // One head, 3 queries: rows [1,0,0], [0.5,0.5,0], [0.2,0.3,0.5].
        let data = vec![1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.2, 0.3, 0.5];
        let attn = Tensor::<4>::from_data(TensorData::new(data, [1, 1, 3, 3]), &Device::flex());
        let all = first_token_attention(&attn, 0)[0];
        let skip1 = first_token_attention(&attn, 1)[0];
        assert!((all - (1.0 + 0.5 + 0.2) / 3.0).abs() < 1e-6);
        assert!((skip1 - 0.35).abs() < 1e-6);
        assert!((chance_first_token(3, 1) - (0.5 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
