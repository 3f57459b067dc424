//! The counting sort that orders the plan's G fragments by (pixel, stroke), each
//! part's fragments counted and placed on a thread of its own, straight into the
//! host tensors the device stage reads. The rasterizer's only `unsafe` code is here.
//!
//! Invariant that makes it sound: after the prefix sum over (pixel q, part k),
//! part k's fragments on pixel q go to the range `start(q, k) .. start(q, k) +
//! count_k(q)`, and these ranges tile `0..G` without overlap. Counting and placing
//! read the same immutable fragment lists, so every fragment of every part gets a
//! position of its own below G: no two threads write one element, and none writes
//! outside the tensors.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use super::plan::{run_parts, Frag};

/// The fragments in (pixel, stroke) order: the matching fields of `Plan`.
pub(super) struct Sorted {
    /// (G) int64 stroke n·S + s, (G) int64 pixel n·H·W + y·W + x, (G) int32 last
    /// fragment of the same pixel; host tensors.
    pub frag_stroke: Tensor,
    pub frag_pixel: Tensor,
    pub frag_run_end: Tensor,
    /// `G`.
    pub fragments: usize,
    /// (F) position among the G of each part's edge fragments, part after part.
    pub edge_pos: Vec<i64>,
    /// Pixels covered by at least one fragment (`U`).
    pub covered_pixels: usize,
}

/// Where the threads place fragments: disjoint elements of two fresh host tensors.
struct SharedOut {
    stroke: *mut i64,
    pixel: *mut i64,
}

// SAFETY: the threads sharing a `SharedOut` only write through it, each to
// elements no other thread writes (the module's invariant), and the tensors it
// points into outlive the threads (`std::thread::scope`).
unsafe impl Sync for SharedOut {}

/// Sorts the parts' fragments `gens` (in stroke order, part after part) by pixel,
/// stable, so that each pixel's fragments stay in stroke (painting) order.
/// `edges[k]`: part k's edge fragments, whose indices in `gens[k]` are 0..edges[k];
/// `npix`: N·H·W, above every fragment's pixel.
pub(super) fn sort_fragments(gens: &[&[Frag]], edges: &[usize], npix: usize) -> Result<Sorted> {
    // counts[k][q]: part k's fragments on pixel q; then where the next goes.
    let mut counts = run_parts(gens.to_vec(), |_, gen| {
        let mut c = vec![0u32; npix];
        for &(_, q, _) in gen {
            c[q as usize] += 1;
        }
        c
    })?;
    let total: usize = gens.iter().map(|g| g.len()).sum();
    if total >= i32::MAX as usize {
        bail!("{total} stroke fragments are too many to rasterize at once (at most {})", i32::MAX);
    }
    let mut run_bounds = Vec::new(); // (first, one past last) of each covered pixel
    let mut at = 0u32;
    for q in 0..npix {
        let first = at;
        for c in counts.iter_mut() {
            let n = c[q];
            c[q] = at;
            at += n;
        }
        if at > first {
            run_bounds.push((first, at));
        }
    }
    let nfrag = at as usize;
    let host_ints = |kind| Tensor::f_empty([nfrag as i64], (kind, Device::Cpu));
    let frag_stroke = host_ints(Kind::Int64)?;
    let frag_pixel = host_ints(Kind::Int64)?;
    let frag_run_end = host_ints(Kind::Int)?;
    let mut edge_pos = vec![0i64; edges.iter().sum()];
    if nfrag > 0 {
        // `data_ptr` cannot fail on these fresh, defined CPU tensors.
        let out = SharedOut {
            stroke: frag_stroke.data_ptr() as *mut i64,
            pixel: frag_pixel.data_ptr() as *mut i64,
        };
        let out = &out;
        // Each part's edge positions are a slice of their own.
        let mut edge_slices = Vec::with_capacity(gens.len());
        let mut rest = edge_pos.as_mut_slice();
        for &e in edges {
            let (mine, tail) = rest.split_at_mut(e);
            edge_slices.push(mine);
            rest = tail;
        }
        let inputs: Vec<_> = gens.iter().zip(counts).zip(edge_slices).collect();
        run_parts(inputs, |_, ((gen, mut next), edge_pos)| {
            for &(g, q, edge) in gen.iter() {
                let at = next[q as usize] as usize;
                next[q as usize] += 1;
                // SAFETY: `at` is this fragment's own position below `nfrag` (the
                // module's invariant), in tensors of `nfrag` int64 elements.
                unsafe {
                    *out.stroke.add(at) = g as i64;
                    *out.pixel.add(at) = q as i64;
                }
                if edge != u32::MAX {
                    edge_pos[edge as usize] = at as i64;
                }
            }
        })?;
        // SAFETY: a fresh contiguous int32 host tensor of `nfrag` elements, not
        // shared with anything yet, and the threads above have finished.
        let run_end =
            unsafe { std::slice::from_raw_parts_mut(frag_run_end.data_ptr() as *mut i32, nfrag) };
        for &(a, b) in &run_bounds {
            run_end[a as usize..b as usize].fill(b as i32 - 1);
        }
    }
    Ok(Sorted {
        frag_stroke,
        frag_pixel,
        frag_run_end,
        fragments: nfrag,
        edge_pos,
        covered_pixels: run_bounds.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::testutil::ints;

    #[test]
    fn fragments_are_ordered_by_pixel_then_part() {
        // Two parts on 4 pixels; part 1's fragments come after part 0's on a pixel.
        let a: Vec<Frag> = vec![(0, 2, 0), (0, 0, u32::MAX), (1, 2, 1)];
        let b: Vec<Frag> = vec![(2, 0, 0), (2, 3, u32::MAX)];
        let s = sort_fragments(&[&a, &b], &[2, 1], 4).unwrap();
        assert_eq!(ints(&s.frag_pixel), [0, 0, 2, 2, 3]);
        assert_eq!(ints(&s.frag_stroke), [0, 2, 0, 1, 2]);
        assert_eq!(ints(&s.frag_run_end), [1, 1, 3, 3, 4]);
        assert_eq!(s.edge_pos, [2, 3, 1]);
        assert_eq!((s.fragments, s.covered_pixels), (5, 3));
    }
}
