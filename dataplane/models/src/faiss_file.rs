//! A structural check of an `ann.faiss` file before FAISS reads it.
//!
//! FAISS's reader allocates what a file's size fields say before it reads the bytes they
//! describe (a vector's length, every inverted list's size, a quantizer's codebook), and its
//! search trusts the ids inside (graph neighbours, levels). A corrupt file can therefore make a
//! load allocate terabytes, or a later search read out of bounds. This walks the layout FAISS
//! 1.12 writes for the index kinds [`crate::ann::IndexKind`] builds — flat, HNSW over flat, and
//! IVF over flat, PQ or 8-bit scalar codes, all inner product — and refuses a file unless every
//! declared size fits in the bytes that follow and agrees with the headers, and every id it
//! holds points inside the index. What FAISS then allocates is bounded by a small multiple of
//! the file's length. Anything else (another index type, a direct map, trailing bytes) is
//! refused: we never write it.

use crate::error::ModelError;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// Largest vector dimension accepted (FAISS itself stores it as an `int`).
const MAX_DIM: i32 = 1 << 16;
/// FAISS refuses PQ codebooks above 24 bits; ours use 8.
const MAX_PQ_BITS: u64 = 24;

/// What an index header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub dim: usize,
    pub ntotal: u64,
}

/// Walks `path` and returns its top-level header, or why FAISS must not read it.
pub fn check(path: &Path) -> Result<Header, ModelError> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
    let mut walker = Walker {
        reader: BufReader::with_capacity(1 << 16, file),
        pos: 0,
        len,
    };
    let fail = |what: String| ModelError::Invalid(format!("{}: {what}", path.display()));
    let header = walker.index(Nesting::Top).map_err(fail)?;
    if walker.pos != len {
        return Err(fail(format!(
            "{} bytes after the index's end",
            len - walker.pos
        )));
    }
    Ok(header)
}

/// Which index types may appear where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nesting {
    Top,
    /// An HNSW's storage or an IVF's coarse quantizer: flat only.
    FlatOnly,
}

/// What each list entry costs in an IVF's inverted lists.
#[derive(Debug, Clone, Copy)]
struct Ivf {
    header: Header,
    nlist: u64,
}

type Walk<T> = Result<T, String>;

struct Walker {
    reader: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Walker {
    fn remaining(&self) -> u64 {
        self.len - self.pos
    }

    fn bytes<const N: usize>(&mut self) -> Walk<[u8; N]> {
        let mut buf = [0u8; N];
        self.reader
            .read_exact(&mut buf)
            .map_err(|_| format!("ends inside a field at byte {}", self.pos))?;
        self.pos += N as u64;
        Ok(buf)
    }

    fn u8(&mut self) -> Walk<u8> {
        Ok(self.bytes::<1>()?[0])
    }

    fn i32(&mut self) -> Walk<i32> {
        Ok(i32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Walk<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn i64(&mut self) -> Walk<i64> {
        Ok(i64::from_le_bytes(self.bytes()?))
    }

    fn fourcc(&mut self) -> Walk<[u8; 4]> {
        self.bytes()
    }

    /// Skips `n` bytes that must be in the file.
    fn skip(&mut self, n: u64, what: &str) -> Walk<()> {
        if n > self.remaining() {
            return Err(format!(
                "{what} claims {n} bytes where {} remain",
                self.remaining()
            ));
        }
        self.reader
            .seek_relative(n as i64)
            .map_err(|e| format!("{what}: {e}"))?;
        self.pos += n;
        Ok(())
    }

    /// A FAISS vector's length prefix, checked against the bytes left: `elem` bytes each.
    fn vector_len(&mut self, elem: u64, what: &str) -> Walk<u64> {
        let count = self.u64()?;
        match count.checked_mul(elem) {
            Some(bytes) if bytes <= self.remaining() => Ok(count),
            _ => Err(format!(
                "{what} claims {count} entries of {elem} bytes where {} bytes remain",
                self.remaining()
            )),
        }
    }

    /// A vector whose contents are not needed: its length, its bytes skipped.
    fn skip_vector(&mut self, elem: u64, what: &str) -> Walk<u64> {
        let count = self.vector_len(elem, what)?;
        self.skip(count * elem, what)?;
        Ok(count)
    }

    fn i32_vector(&mut self, what: &str) -> Walk<Vec<i32>> {
        let count = self.vector_len(4, what)?;
        (0..count).map(|_| self.i32()).collect()
    }

    fn u64_vector(&mut self, what: &str) -> Walk<Vec<u64>> {
        let count = self.vector_len(8, what)?;
        (0..count).map(|_| self.u64()).collect()
    }

    /// `Index` fields every index starts with; only inner product is ours.
    fn header(&mut self) -> Walk<Header> {
        let dim = self.i32()?;
        let ntotal = self.i64()?;
        let _ = (self.i64()?, self.i64()?); // two fields FAISS no longer reads
        let _is_trained = self.u8()?;
        let metric = self.i32()?;
        if !(1..=MAX_DIM).contains(&dim) {
            return Err(format!("dimension {dim} is outside 1..={MAX_DIM}"));
        }
        let ntotal = u64::try_from(ntotal).map_err(|_| format!("{ntotal} vectors"))?;
        if metric != 0 {
            return Err(format!("metric {metric} is not inner product"));
        }
        Ok(Header {
            dim: dim as usize,
            ntotal,
        })
    }

    fn index(&mut self, nesting: Nesting) -> Walk<Header> {
        let code = self.fourcc()?;
        match (&code, nesting) {
            (b"IxFI" | b"IxF2" | b"IxFl", _) => self.flat(),
            (b"IHNf", Nesting::Top) => self.hnsw(),
            (b"IwFl", Nesting::Top) => {
                let ivf = self.ivf_header()?;
                self.inverted_lists(ivf, ivf.header.dim as u64 * 4)?;
                Ok(ivf.header)
            }
            (b"IwPQ", Nesting::Top) => self.ivf_pq(),
            (b"IwSq", Nesting::Top) => self.ivf_sq(),
            _ => Err(format!(
                "index type {:?} is not one recsys writes here",
                String::from_utf8_lossy(&code)
            )),
        }
    }

    /// Flat codes: `ntotal × dim` floats, the length counted in 4-byte words.
    fn flat(&mut self) -> Walk<Header> {
        let header = self.header()?;
        let words = self.skip_vector(4, "flat codes")?;
        if Some(words) != header.ntotal.checked_mul(header.dim as u64) {
            return Err(format!(
                "flat codes hold {words} floats, not {} vectors of dim {}",
                header.ntotal, header.dim
            ));
        }
        Ok(header)
    }

    /// The HNSW graph, every link and level checked, then its flat storage.
    fn hnsw(&mut self) -> Walk<Header> {
        let header = self.header()?;
        let n = header.ntotal;
        let probas = self.skip_vector(8, "HNSW level probabilities")?;
        let cum = self.i32_vector("HNSW neighbours per level")?;
        let levels = self.i32_vector("HNSW levels")?;
        let offsets = self.u64_vector("HNSW offsets")?;
        if cum.len() as u64 != probas + 1
            || cum.first() != Some(&0)
            || cum.windows(2).any(|w| w[1] < w[0])
        {
            return Err("HNSW neighbours per level are not a cumulative count".into());
        }
        if levels.len() as u64 != n || offsets.len() as u64 != n + 1 || offsets[0] != 0 {
            return Err(format!(
                "HNSW has {} levels and {} offsets for {n} vectors",
                levels.len(),
                offsets.len()
            ));
        }
        for (i, &level) in levels.iter().enumerate() {
            let per_node = usize::try_from(level)
                .ok()
                .filter(|&l| l >= 1 && l < cum.len())
                .map(|l| cum[l] as u64)
                .ok_or_else(|| format!("HNSW node {i} has level {level}"))?;
            if offsets[i + 1].checked_sub(offsets[i]) != Some(per_node) {
                return Err(format!("HNSW node {i}'s offsets disagree with its level"));
            }
        }
        let links = self.vector_len(4, "HNSW neighbours")?;
        if links != offsets[n as usize] {
            return Err(format!(
                "HNSW holds {links} links where its offsets need {}",
                offsets[n as usize]
            ));
        }
        for k in 0..links {
            let id = self.i32()?;
            if id < -1 || id as i64 >= n as i64 {
                return Err(format!("HNSW link {k} points at node {id} of {n}"));
            }
        }
        let entry = self.i32()?;
        let max_level = self.i32()?;
        let _ = (self.i32()?, self.i32()?, self.i32()?); // efConstruction, efSearch, unused
        let top = levels.iter().copied().max().unwrap_or(0) - 1;
        let entry_ok = if n == 0 {
            entry == -1
        } else {
            (0..n as i64).contains(&(entry as i64)) && max_level == top
        };
        if !entry_ok {
            return Err(format!(
                "HNSW entry point {entry} / top level {max_level} do not fit its {n} nodes"
            ));
        }
        let storage = self.index(Nesting::FlatOnly)?;
        if storage != header {
            return Err(format!(
                "HNSW storage holds {storage:?} where the graph has {header:?}"
            ));
        }
        Ok(header)
    }

    /// The IVF fields, the coarse quantizer (flat, one centroid per list) and an empty
    /// direct map.
    fn ivf_header(&mut self) -> Walk<Ivf> {
        let header = self.header()?;
        let nlist = self.u64()?;
        let _nprobe = self.u64()?;
        let quantizer = self.index(Nesting::FlatOnly)?;
        if quantizer.dim != header.dim || quantizer.ntotal != nlist {
            return Err(format!(
                "IVF of {nlist} lists of dim {} has a quantizer of {quantizer:?}",
                header.dim
            ));
        }
        let direct_map = self.u8()?;
        let mapped = self.skip_vector(8, "IVF direct map")?;
        if direct_map != 0 || mapped != 0 {
            return Err("IVF direct maps are not written by recsys".into());
        }
        Ok(Ivf { header, nlist })
    }

    /// `ilar` inverted lists: `nlist` sizes summing to `ntotal`, then each list's codes and
    /// ids (every id one of the index's positions).
    fn inverted_lists(&mut self, ivf: Ivf, code_size: u64) -> Walk<()> {
        if &self.fourcc()? != b"ilar" {
            return Err("inverted lists are not an array".into());
        }
        let (nlist, declared_code_size) = (self.u64()?, self.u64()?);
        if nlist != ivf.nlist || declared_code_size != code_size {
            return Err(format!(
                "inverted lists of {nlist} × {declared_code_size} B where the IVF has {} × {code_size} B",
                ivf.nlist
            ));
        }
        let sizes: Vec<u64> = match &self.fourcc()? {
            b"full" => self.u64_vector("list sizes")?,
            b"sprs" => {
                let pairs = self.u64_vector("sparse list sizes")?;
                if pairs.len() % 2 != 0 {
                    return Err("sparse list sizes are not pairs".into());
                }
                // Bounded: nlist centroids were in the file already.
                let mut sizes = vec![0u64; nlist as usize];
                for pair in pairs.chunks(2) {
                    let slot = sizes
                        .get_mut(pair[0] as usize)
                        .ok_or_else(|| format!("list {} of {nlist}", pair[0]))?;
                    *slot = pair[1];
                }
                sizes
            }
            other => return Err(format!("list layout {:?}", String::from_utf8_lossy(other))),
        };
        if sizes.len() as u64 != nlist {
            return Err(format!("{} list sizes for {nlist} lists", sizes.len()));
        }
        // FAISS sizes every list before reading any: the sum must fit first.
        let total = sizes
            .iter()
            .try_fold(0u64, |acc, &s| acc.checked_add(s))
            .filter(|&t| t == ivf.header.ntotal)
            .ok_or_else(|| format!("list sizes do not sum to the {} vectors", ivf.header.ntotal))?;
        if total
            .checked_mul(code_size + 8)
            .is_none_or(|bytes| bytes > self.remaining())
        {
            return Err(format!("{total} listed vectors do not fit in the file"));
        }
        for size in sizes.into_iter().filter(|&s| s > 0) {
            self.skip(size * code_size, "list codes")?;
            for _ in 0..size {
                let id = self.i64()?;
                if !(0..ivf.header.ntotal as i64).contains(&id) {
                    return Err(format!(
                        "an inverted list names vector {id} of {}",
                        ivf.header.ntotal
                    ));
                }
            }
        }
        Ok(())
    }

    /// IVF over product-quantized codes: `m` sub-quantizers of `nbits`, a full codebook.
    fn ivf_pq(&mut self) -> Walk<Header> {
        let ivf = self.ivf_header()?;
        let _by_residual = self.u8()?;
        let code_size = self.u64()?;
        let (d, m, nbits) = (self.u64()?, self.u64()?, self.u64()?);
        if d != ivf.header.dim as u64 || m == 0 || d % m != 0 || !(1..=MAX_PQ_BITS).contains(&nbits)
        {
            return Err(format!("PQ of dim {d}, {m} × {nbits} bits"));
        }
        if code_size != (m * nbits).div_ceil(8) {
            return Err(format!("PQ code size {code_size} for {m} × {nbits} bits"));
        }
        let centroids = self.skip_vector(4, "PQ codebook")?;
        if centroids != d << nbits {
            return Err(format!("PQ codebook of {centroids} floats"));
        }
        self.inverted_lists(ivf, code_size)?;
        Ok(ivf.header)
    }

    /// IVF over 8-bit scalar codes: per-dimension minimum and range, `dim` bytes a vector.
    fn ivf_sq(&mut self) -> Walk<Header> {
        let ivf = self.ivf_header()?;
        let (qtype, _rangestat) = (self.i32()?, self.i32()?);
        let _rangestat_arg = self.bytes::<4>()?;
        let (d, sq_code_size) = (self.u64()?, self.u64()?);
        let trained = self.skip_vector(4, "SQ ranges")?;
        let dim = ivf.header.dim as u64;
        // QT_8bit, non-uniform: code `d` bytes, trained = min and range per dimension.
        if qtype != 0 || d != dim || sq_code_size != dim || trained != 2 * dim {
            return Err(format!(
                "scalar quantizer type {qtype} of dim {d}, {sq_code_size} B codes, {trained} ranges"
            ));
        }
        let code_size = self.u64()?;
        let _by_residual = self.u8()?;
        if code_size != dim {
            return Err(format!("SQ8 code size {code_size} for dim {dim}"));
        }
        self.inverted_lists(ivf, code_size)?;
        Ok(ivf.header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ann::tests::unit_vectors as vectors;
    use crate::ann::{AnnIndex, IndexKind};

    const KINDS: [IndexKind; 5] = [
        IndexKind::Flat,
        IndexKind::Hnsw {
            m: 8,
            ef_search: 64,
        },
        IndexKind::Ivf {
            nlist: 8,
            nprobe: 4,
        },
        IndexKind::IvfPq {
            nlist: 8,
            nprobe: 4,
            m: 4,
            nbits: 8,
        },
        IndexKind::IvfSq8 {
            nlist: 8,
            nprobe: 4,
        },
    ];

    /// Each kind saved under `root/<n>`: (directory, the file's bytes).
    fn saved(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let (n, dim) = (600, 16);
        let v = vectors(n, dim);
        KINDS
            .iter()
            .enumerate()
            .map(|(k, &kind)| {
                let dir = root.join(k.to_string());
                AnnIndex::build(kind, dim, &v, (0..n as u32).collect())
                    .unwrap()
                    .save(&dir)
                    .unwrap();
                let bytes = std::fs::read(dir.join("ann.faiss")).unwrap();
                (dir, bytes)
            })
            .collect()
    }

    #[test]
    fn every_kind_recsys_writes_passes_with_its_true_header() {
        let root = tempfile::tempdir().unwrap();
        for (dir, _) in saved(root.path()) {
            let header = check(&dir.join("ann.faiss")).unwrap();
            assert_eq!(
                header,
                Header {
                    dim: 16,
                    ntotal: 600
                },
                "{}",
                dir.display()
            );
            AnnIndex::load(&dir).unwrap();
        }
    }

    #[test]
    fn a_size_field_claiming_more_than_the_file_holds_is_refused_before_faiss_reads_it() {
        let root = tempfile::tempdir().unwrap();
        for (dir, bytes) in saved(root.path()) {
            let path = dir.join("ann.faiss");
            // Every 8-byte window set to a huge count, as a corrupted length prefix would
            // be: the check refuses, or the file still describes itself consistently and
            // FAISS reads it within bounds (the load then either works or fails cleanly).
            let mut refused = 0;
            let stride = (bytes.len() / 400).max(1);
            for at in (0..bytes.len().saturating_sub(8)).step_by(stride) {
                let mut bad = bytes.clone();
                bad[at..at + 8].copy_from_slice(&(1u64 << 39).to_le_bytes());
                std::fs::write(&path, &bad).unwrap();
                match check(&path) {
                    Err(_) => refused += 1,
                    Ok(_) => {
                        let _ = AnnIndex::load(&dir);
                    }
                }
            }
            assert!(refused > 0, "{}", dir.display());
            // Truncated anywhere, or with a byte appended: refused.
            for cut in [1, 9, bytes.len() / 3, bytes.len() - 1] {
                std::fs::write(&path, &bytes[..cut]).unwrap();
                assert!(check(&path).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            std::fs::write(&path, &longer).unwrap();
            assert!(check(&path)
                .unwrap_err()
                .to_string()
                .contains("after the index"));
        }
    }

    #[test]
    fn an_hnsw_link_outside_the_graph_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (dir, bytes) = saved(root.path()).swap_remove(1);
        let path = dir.join("ann.faiss");
        // The first link sits after the header (4 + 4 + 8·3 + 1 + 4 bytes), the level
        // probabilities, the per-level counts, the levels, the offsets and the links' length.
        let mut at = 4 + 4 + 8 * 3 + 1 + 4;
        for elem in [8usize, 4, 4, 8] {
            let count = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            at += 8 + count * elem;
        }
        at += 8;
        let mut bad = bytes.clone();
        bad[at..at + 4].copy_from_slice(&600i32.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        let refused = check(&path).unwrap_err().to_string();
        assert!(refused.contains("points at node 600"), "{refused}");
        assert!(AnnIndex::load(&dir).is_err());
    }
}
