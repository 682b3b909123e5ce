//! The on-disk cache's binary format: magic, version, fingerprint, the data set, then a
//! sha256 of everything before it. Integers are little-endian u64 (labels u32); strings are
//! length-prefixed.

use sha2::{Digest, Sha256};

use super::GENERATOR_VERSION;
use crate::data::{DataKind, Dataset, Split, TaskData, CHANNELS};

const MAGIC: &[u8; 8] = b"KDSYNTH\x01";

pub(super) fn encode(ds: &Dataset, fp: &str) -> Vec<u8> {
    let payload: usize = ds
        .tasks
        .iter()
        .flat_map(|t| [&t.train, &t.val, &t.test])
        .map(|s| s.images.len() + 4 * s.labels.len() + 8)
        .sum();
    let mut out = Vec::with_capacity(payload + 1024);
    let put_u64 = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u64).to_le_bytes());
    let put_str = |out: &mut Vec<u8>, s: &str| {
        put_u64(out, s.len());
        out.extend_from_slice(s.as_bytes());
    };
    out.extend_from_slice(MAGIC);
    put_str(&mut out, GENERATOR_VERSION);
    put_str(&mut out, fp);
    put_str(&mut out, &ds.key);
    put_u64(&mut out, ds.image_size);
    put_u64(&mut out, ds.tasks.len());
    for t in &ds.tasks {
        put_str(&mut out, &t.key);
        put_str(&mut out, &t.name);
        put_u64(&mut out, t.num_classes);
        for s in [&t.train, &t.val, &t.test] {
            put_u64(&mut out, s.labels.len());
            for l in &s.labels {
                out.extend_from_slice(&l.to_le_bytes());
            }
            out.extend_from_slice(&s.images);
        }
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// `None` for anything that is not a complete, intact file of this fingerprint.
pub(super) fn decode(bytes: &[u8], fp: &str) -> Option<Dataset> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, digest) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let mut r = Reader { buf: body, pos: 0 };
    if r.take(MAGIC.len())? != MAGIC || r.str()? != GENERATOR_VERSION || r.str()? != fp {
        return None;
    }
    let key = r.str()?;
    let image_size = r.usize()?;
    let image_bytes = CHANNELS.checked_mul(image_size)?.checked_mul(image_size)?;
    let n_tasks = r.usize()?;
    let mut tasks = Vec::new();
    for _ in 0..n_tasks {
        let key = r.str()?;
        let name = r.str()?;
        let num_classes = r.usize()?;
        let mut splits = Vec::with_capacity(3);
        for _ in 0..3 {
            let n = r.usize()?;
            let labels: Vec<u32> = r
                .take(n.checked_mul(4)?)?
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if labels.iter().any(|&l| l as usize >= num_classes) {
                return None;
            }
            let images = r.take(n.checked_mul(image_bytes)?)?.to_vec();
            splits.push(Split { images, labels });
        }
        let test = splits.pop()?;
        let val = splits.pop()?;
        let train = splits.pop()?;
        tasks.push(TaskData {
            key,
            name,
            num_classes,
            train,
            val,
            test,
        });
    }
    if r.pos != body.len() {
        return None;
    }
    Some(Dataset {
        key,
        kind: DataKind::Synthetic,
        image_size,
        tasks,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn usize(&mut self) -> Option<usize> {
        let b = self.take(8)?;
        usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok()
    }
    fn str(&mut self) -> Option<String> {
        let n = self.usize()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}
