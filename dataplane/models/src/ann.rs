//! Approximate nearest-neighbour search over item embeddings with FAISS (inner product on
//! L2-normalised vectors = cosine). The index stores positions; `item_ids` maps them back.

use crate::error::ModelError;
use faiss::index::IndexImpl;
use faiss::{index_factory, Index, MetricType};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;

/// Index families we build, with their search-time knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum IndexKind {
    /// Exact search: right for small catalogs and as the recall reference.
    Flat,
    /// Graph index: `m` links per node, `ef_search` candidates explored per query.
    Hnsw { m: u32, ef_search: u32 },
    /// Inverted lists: `nlist` clusters, `nprobe` visited per query.
    Ivf { nlist: u32, nprobe: u32 },
    /// Inverted lists over product-quantized codes: `m` sub-quantizers of `nbits` bits each,
    /// so a vector costs `m·nbits/8` bytes instead of `4·dim`. Lossy: for very large catalogs.
    IvfPq {
        nlist: u32,
        nprobe: u32,
        m: u32,
        nbits: u32,
    },
    /// Inverted lists over 8-bit scalar-quantized vectors: a quarter of the flat lists' memory
    /// (`dim` bytes per vector) and faster scans, at a small loss in recall@500.
    IvfSq8 { nlist: u32, nprobe: u32 },
}

impl IndexKind {
    /// A sensible default for a catalog of `n` items: exact below 50k items, IVF above with
    /// about 4·√n lists and 1/32 of them probed. IVF rather than HNSW because retrieval asks
    /// for k = 500: at 1M items HNSW32 stays below 0.95 recall@500 even at efSearch 1024,
    /// while IVF4096/nprobe128 reaches it (docs/benchmarks.md).
    pub fn for_catalog(n: usize) -> Self {
        if n < 50_000 {
            Self::Flat
        } else {
            let nlist = (4.0 * (n as f64).sqrt()).log2().round().exp2() as u32;
            Self::Ivf {
                nlist,
                nprobe: (nlist / 32).max(1),
            }
        }
    }

    fn factory_string(&self) -> String {
        match self {
            Self::Flat => "Flat".into(),
            Self::Hnsw { m, .. } => format!("HNSW{m},Flat"),
            Self::Ivf { nlist, .. } => format!("IVF{nlist},Flat"),
            Self::IvfPq {
                nlist, m, nbits, ..
            } => format!("IVF{nlist},PQ{m}x{nbits}"),
            Self::IvfSq8 { nlist, .. } => format!("IVF{nlist},SQ8"),
        }
    }
}

/// IVF centroids need tens of points per list, not the whole catalog: k-means on 64 × nlist
/// evenly spaced rows costs a fraction of the full set and loses no measurable recall.
fn training_sample(kind: IndexKind, dim: usize, vectors: &[f32]) -> &[f32] {
    match kind {
        IndexKind::Ivf { nlist, .. }
        | IndexKind::IvfPq { nlist, .. }
        | IndexKind::IvfSq8 { nlist, .. } => {
            let rows = vectors.len() / dim;
            // PQ codebooks need a few thousand points per sub-quantizer as well.
            let codebook = match kind {
                IndexKind::IvfPq { nbits, .. } => 40usize << nbits,
                _ => 0,
            };
            let wanted = (64 * nlist as usize).max(codebook).min(rows);
            // The first rows stand in for the whole set: callers pass items in no order that
            // correlates with their position in embedding space.
            &vectors[..wanted * dim]
        }
        _ => vectors,
    }
}

/// A searchable index plus the item id of every stored vector.
pub struct AnnIndex {
    index: IndexImpl,
    kind: IndexKind,
    item_ids: Vec<u32>,
    dim: usize,
}

impl std::fmt::Debug for AnnIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnIndex")
            .field("kind", &self.kind)
            .field("items", &self.item_ids.len())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct IndexMeta {
    kind: IndexKind,
    dim: usize,
    item_ids: Vec<u32>,
}

impl AnnIndex {
    /// Builds an inner-product index over `vectors` (row-major, `item_ids.len() × dim`).
    pub fn build(
        kind: IndexKind,
        dim: usize,
        vectors: &[f32],
        item_ids: Vec<u32>,
    ) -> Result<Self, ModelError> {
        if dim == 0 || vectors.len() != item_ids.len() * dim {
            return Err(ModelError::Invalid(format!(
                "{} values are not {} vectors of dim {dim}",
                vectors.len(),
                item_ids.len()
            )));
        }
        let mut index = index_factory(dim as u32, kind.factory_string(), MetricType::InnerProduct)?;
        if !index.is_trained() {
            index.train(training_sample(kind, dim, vectors))?;
        }
        index.add(vectors)?;
        let ann = Self {
            index,
            kind,
            item_ids,
            dim,
        };
        ann.apply_search_params()?;
        Ok(ann)
    }

    fn apply_search_params(&self) -> Result<(), ModelError> {
        let space = faiss::index::autotune::ParameterSpace::new()?;
        match self.kind {
            IndexKind::Flat => {}
            IndexKind::Hnsw { ef_search, .. } => {
                space.set_index_parameter(&self.index, "efSearch", ef_search)?
            }
            IndexKind::Ivf { nprobe, .. }
            | IndexKind::IvfPq { nprobe, .. }
            | IndexKind::IvfSq8 { nprobe, .. } => {
                space.set_index_parameter(&self.index, "nprobe", nprobe)?
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.item_ids.len()
    }

    /// The item id of every stored vector, in index order (as the index file says; the
    /// loader of a version checks them against its catalog).
    pub fn item_ids(&self) -> &[u32] {
        &self.item_ids
    }

    pub fn is_empty(&self) -> bool {
        self.item_ids.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn kind(&self) -> IndexKind {
        self.kind
    }

    /// Top `k` items for one query vector, best first, as (item id, inner product).
    /// Takes `&self`: FAISS searches are read-only, so one index serves every worker thread.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(u32, f32)>, ModelError> {
        if query.len() != self.dim {
            return Err(ModelError::Invalid(format!(
                "query has dim {}, index has {}",
                query.len(),
                self.dim
            )));
        }
        let k = k.min(self.item_ids.len());
        if k == 0 {
            return Ok(Vec::new());
        }
        let (distances, labels) = self.raw_search(query, 1, k)?;
        Ok(labels
            .into_iter()
            .zip(distances)
            .filter(|(label, _)| *label >= 0)
            .filter_map(|(label, d)| self.item_ids.get(label as usize).map(|&id| (id, d)))
            .collect())
    }

    /// FAISS's own search of `n` row-major queries: `n × k` distances and labels (−1 where
    /// fewer than `k` exist). `k` must be at least 1.
    fn raw_search(
        &self,
        queries: &[f32],
        n: usize,
        k: usize,
    ) -> Result<(Vec<f32>, Vec<i64>), ModelError> {
        debug_assert!(k > 0 && queries.len() == n * self.dim);
        let mut distances = vec![0f32; n * k];
        let mut labels = vec![-1i64; n * k];
        // SAFETY: `faiss_Index_search` is a const method in FAISS and thread-safe for the CPU
        // index types built here; the buffers hold exactly `k` results for each of `n` queries.
        let code = unsafe {
            faiss_sys::faiss_Index_search(
                self.index.inner_ptr(),
                n as i64,
                queries.as_ptr(),
                k as i64,
                distances.as_mut_ptr(),
                labels.as_mut_ptr(),
            )
        };
        if code != 0 {
            return Err(ModelError::Invalid(format!(
                "faiss search failed with code {code}"
            )));
        }
        Ok((distances, labels))
    }

    /// Mean recall@k of this index against `exact` (a flat index over the same vectors) over
    /// row-major `queries`.
    pub fn recall_against(
        &self,
        exact: &AnnIndex,
        queries: &[f32],
        k: usize,
    ) -> Result<f64, ModelError> {
        let truth = exact.top_ids(queries, k)?;
        self.recall_with(&truth, queries, k)
    }

    /// For inverted-list kinds, the fewest lists probed (1, 2, 4, … up to all) whose
    /// recall@k against `exact` reaches `target`; the index keeps that setting, and its
    /// recall is returned. Probing fewer lists is the main lever on retrieval latency, and how
    /// many a catalog needs depends on how its embeddings cluster, so it is measured, not
    /// guessed. Other kinds are only measured.
    pub fn tune_probes(
        &mut self,
        exact: &AnnIndex,
        queries: &[f32],
        k: usize,
        target: f64,
    ) -> Result<f64, ModelError> {
        let truth = exact.top_ids(queries, k)?;
        let nlist = match self.kind {
            IndexKind::Ivf { nlist, .. }
            | IndexKind::IvfPq { nlist, .. }
            | IndexKind::IvfSq8 { nlist, .. } => nlist.max(1),
            _ => return self.recall_with(&truth, queries, k),
        };
        let mut probes = 1;
        loop {
            self.set_probes(probes)?;
            let recall = self.recall_with(&truth, queries, k)?;
            if recall >= target || probes >= nlist {
                return Ok(recall);
            }
            probes = (probes * 2).min(nlist);
        }
    }

    fn set_probes(&mut self, probes: u32) -> Result<(), ModelError> {
        match &mut self.kind {
            IndexKind::Ivf { nprobe, .. }
            | IndexKind::IvfPq { nprobe, .. }
            | IndexKind::IvfSq8 { nprobe, .. } => *nprobe = probes,
            _ => {}
        }
        self.apply_search_params()
    }

    fn check_queries(&self, queries: &[f32]) -> Result<usize, ModelError> {
        if self.dim == 0 || queries.is_empty() || !queries.len().is_multiple_of(self.dim) {
            return Err(ModelError::Invalid(format!(
                "{} query values are not rows of dim {}",
                queries.len(),
                self.dim
            )));
        }
        Ok(queries.len() / self.dim)
    }

    /// The top `k` item ids of every query, searched as one batch (FAISS turns a flat batch
    /// into one matrix product).
    fn top_ids(&self, queries: &[f32], k: usize) -> Result<Vec<HashSet<u32>>, ModelError> {
        let n = self.check_queries(queries)?;
        let k = k.min(self.item_ids.len());
        let labels = if k == 0 {
            Vec::new()
        } else {
            self.raw_search(queries, n, k)?.1
        };
        Ok(labels
            .chunks(k.max(1))
            .take(n)
            .map(|row| {
                row.iter()
                    .filter(|&&l| l >= 0)
                    .filter_map(|&l| self.item_ids.get(l as usize).copied())
                    .collect()
            })
            .collect())
    }

    fn recall_with(
        &self,
        truth: &[HashSet<u32>],
        queries: &[f32],
        k: usize,
    ) -> Result<f64, ModelError> {
        self.check_queries(queries)?;
        let mut total = 0.0;
        let mut n = 0usize;
        for (q, truth) in queries.chunks(self.dim).zip(truth) {
            if truth.is_empty() {
                continue;
            }
            let found = self
                .search(q, k)?
                .into_iter()
                .filter(|h| truth.contains(&h.0))
                .count();
            total += found as f64 / truth.len() as f64;
            n += 1;
        }
        Ok(if n == 0 { 0.0 } else { total / n as f64 })
    }

    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let index_path = dir.join("ann.faiss");
        faiss::write_index(&self.index, index_path.to_string_lossy().as_ref())?;
        let meta = IndexMeta {
            kind: self.kind,
            dim: self.dim,
            item_ids: self.item_ids.clone(),
        };
        let meta_path = dir.join("ann.json");
        let json = serde_json::to_vec(&meta).map_err(|e| ModelError::Invalid(e.to_string()))?;
        std::fs::write(&meta_path, json).map_err(|e| ModelError::io(&meta_path, e))
    }

    /// Loads an index saved by [`AnnIndex::save`], refusing one whose vector count or dimension
    /// disagrees with its id map.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let meta_path = dir.join("ann.json");
        let json = std::fs::read(&meta_path).map_err(|e| ModelError::io(&meta_path, e))?;
        let meta: IndexMeta = serde_json::from_slice(&json)
            .map_err(|e| ModelError::Invalid(format!("{}: {e}", meta_path.display())))?;
        let index_path = dir.join("ann.faiss");
        if !index_path.is_file() {
            return Err(ModelError::io(
                &index_path,
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        // FAISS allocates what the file's size fields say: they are checked first.
        let declared = crate::faiss_file::check(&index_path)?;
        if declared.ntotal != meta.item_ids.len() as u64 || declared.dim != meta.dim {
            return Err(ModelError::Invalid(format!(
                "{}: {} vectors of dim {} but the id map has {} items of dim {}",
                index_path.display(),
                declared.ntotal,
                declared.dim,
                meta.item_ids.len(),
                meta.dim
            )));
        }
        let index = faiss::read_index(index_path.to_string_lossy().as_ref())?;
        let ann = Self {
            index,
            kind: meta.kind,
            item_ids: meta.item_ids,
            dim: meta.dim,
        };
        ann.apply_search_params()?;
        Ok(ann)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn unit_vectors(n: usize, dim: usize) -> Vec<f32> {
        // A hash of the index, so no two rows repeat.
        let mut v: Vec<f32> = (0..n * dim)
            .map(|i| ((i as f32 * 12.9898).sin() * 43_758.547).fract() - 0.5)
            .collect();
        for row in v.chunks_mut(dim) {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            row.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    #[test]
    fn flat_search_returns_the_vector_itself_first() {
        let dim = 16;
        let vectors = unit_vectors(200, dim);
        let ids: Vec<u32> = (0..200).map(|i| i * 10).collect();
        let ann = AnnIndex::build(IndexKind::Flat, dim, &vectors, ids).unwrap();
        let hits = ann.search(&vectors[37 * dim..38 * dim], 5).unwrap();
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0].0, 370);
        assert!((hits[0].1 - 1.0).abs() < 1e-4);
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn hnsw_agrees_with_exact_search_on_a_small_set() {
        let dim = 16;
        let vectors = unit_vectors(500, dim);
        let ids: Vec<u32> = (0..500).collect();
        let exact = AnnIndex::build(IndexKind::Flat, dim, &vectors, ids.clone()).unwrap();
        let hnsw = AnnIndex::build(
            IndexKind::Hnsw {
                m: 16,
                ef_search: 128,
            },
            dim,
            &vectors,
            ids,
        )
        .unwrap();
        let q = &vectors[3 * dim..4 * dim];
        let a: Vec<u32> = exact
            .search(q, 10)
            .unwrap()
            .into_iter()
            .map(|h| h.0)
            .collect();
        let b: Vec<u32> = hnsw
            .search(q, 10)
            .unwrap()
            .into_iter()
            .map(|h| h.0)
            .collect();
        let overlap = a.iter().filter(|x| b.contains(x)).count();
        assert!(overlap >= 9, "overlap {overlap}");
    }

    #[test]
    fn ivf_pq_recalls_most_of_the_exact_top_ten() {
        let dim = 16;
        let n = 4000;
        let vectors = unit_vectors(n, dim);
        let ids: Vec<u32> = (0..n as u32).collect();
        let exact = AnnIndex::build(IndexKind::Flat, dim, &vectors, ids.clone()).unwrap();
        let kind = IndexKind::IvfPq {
            nlist: 16,
            nprobe: 16,
            m: 8,
            nbits: 8,
        };
        let pq = AnnIndex::build(kind, dim, &vectors, ids).unwrap();
        assert_eq!(pq.kind(), kind);
        let recall = pq.recall_against(&exact, &vectors[..50 * dim], 10).unwrap();
        // Every list is probed, so only quantization loses neighbours.
        assert!(recall > 0.6, "recall@10 {recall}");
        assert!(
            recall < 1.0,
            "PQ is lossy; recall {recall} means it was not used"
        );
    }

    #[test]
    fn probe_tuning_stops_at_the_first_count_reaching_the_target() {
        let dim = 16;
        let n = 4000;
        let vectors = unit_vectors(n, dim);
        let ids: Vec<u32> = (0..n as u32).collect();
        let exact = AnnIndex::build(IndexKind::Flat, dim, &vectors, ids.clone()).unwrap();
        let queries = &vectors[..100 * dim];
        let kind = IndexKind::IvfSq8 {
            nlist: 32,
            nprobe: 32,
        };
        let mut ivf = AnnIndex::build(kind, dim, &vectors, ids).unwrap();
        let all = ivf.recall_against(&exact, queries, 20).unwrap();
        let recall = ivf.tune_probes(&exact, queries, 20, 0.8).unwrap();
        let IndexKind::IvfSq8 { nprobe, .. } = ivf.kind() else {
            panic!("kind changed")
        };
        assert!(
            recall >= 0.8 && nprobe < 32,
            "nprobe {nprobe}, recall {recall}"
        );
        // The count before it falls short: the tuner did not overshoot.
        ivf.set_probes(nprobe / 2).unwrap();
        assert!(ivf.recall_against(&exact, queries, 20).unwrap() < 0.8);
        // An unreachable target ends with every list probed.
        let best = ivf.tune_probes(&exact, queries, 20, 1.1).unwrap();
        assert_eq!(ivf.kind(), kind);
        assert_eq!(best, all);
    }

    #[test]
    fn large_catalogs_get_ivf_with_about_four_root_n_lists() {
        assert_eq!(IndexKind::for_catalog(10_000), IndexKind::Flat);
        assert_eq!(
            IndexKind::for_catalog(1_000_000),
            IndexKind::Ivf {
                nlist: 4096,
                nprobe: 128
            }
        );
    }

    #[test]
    fn save_load_round_trip_and_truncated_index_is_refused() {
        let dir = std::env::temp_dir().join(format!("ann-{}", std::process::id()));
        let dim = 8;
        let vectors = unit_vectors(50, dim);
        let ann = AnnIndex::build(IndexKind::Flat, dim, &vectors, (0..50).collect()).unwrap();
        ann.save(&dir).unwrap();
        let loaded = AnnIndex::load(&dir).unwrap();
        assert_eq!(
            ann.search(&vectors[..dim], 3).unwrap(),
            loaded.search(&vectors[..dim], 3).unwrap()
        );

        let bytes = std::fs::read(dir.join("ann.faiss")).unwrap();
        std::fs::write(dir.join("ann.faiss"), &bytes[..bytes.len() / 2]).unwrap();
        assert!(AnnIndex::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn wrong_query_dimension_is_an_error() {
        let ann = AnnIndex::build(IndexKind::Flat, 4, &unit_vectors(3, 4), vec![0, 1, 2]).unwrap();
        assert!(ann.search(&[1.0, 0.0], 2).is_err());
    }
}
