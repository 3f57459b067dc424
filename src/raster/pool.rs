//! Host buffers kept between calls: the rasterizer's only state, in plain sight.
//!
//! On these machines a fresh page costs more than the work done in it (a plan
//! worker's per-pixel scratch is 16 bytes a pixel, its fragment list 12 bytes a
//! fragment), so each plan worker takes its [`Scratch`] and fragment list from a
//! [`Pools`] and gives them back when the call is done. [`SHARED`], the pools
//! [`rasterize`](super::rasterize) uses, is a process-wide `static`; each of its
//! pools holds at most [`MAX_PLAN_THREADS`] buffers (as many as one call uses at
//! once; callers beyond that allocate and drop their own). Pooled buffers never
//! change a result: each is cleared or overwritten before it is read (see
//! `Scratch::take`), which the tests below check with pools left dirty by scenes
//! of other sizes.

use std::sync::Mutex;

use super::plan::{Frag, Scratch, MAX_PLAN_THREADS};

/// A stack of at most [`MAX_PLAN_THREADS`] reusable buffers.
pub(super) struct Pool<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Pool<T> {
    const fn new() -> Pool<T> {
        Pool { items: Mutex::new(Vec::new()) }
    }

    /// A buffer from the pool, if one is there; its contents are stale.
    pub fn take(&self) -> Option<T> {
        self.items.lock().ok()?.pop()
    }

    /// Keeps `item` for a later call, unless the pool is full.
    pub fn give(&self, item: T) {
        if let Ok(mut p) = self.items.lock() {
            if p.len() < MAX_PLAN_THREADS {
                p.push(item);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }
}

/// The buffers one plan needs: per-pixel scratch and fragment lists.
pub(super) struct Pools {
    pub scratch: Pool<Scratch>,
    pub gen: Pool<Vec<Frag>>,
}

impl Pools {
    /// Empty pools.
    pub const fn new() -> Pools {
        Pools { scratch: Pool::new(), gen: Pool::new() }
    }
}

/// The pools behind [`rasterize`](super::rasterize) and
/// [`plan_stats`](super::plan_stats).
pub(super) static SHARED: Pools = Pools::new();

#[cfg(test)]
mod tests {
    use tch::{Device, Kind};

    use super::*;
    use crate::raster::host::HostScene;
    use crate::raster::plan::{comparable, Plan};
    use crate::raster::{rasterize_in, RasterStats};
    use crate::scene::{Canvas, Scene};

    #[test]
    fn a_pool_keeps_at_most_its_cap() {
        let pool = Pool::new();
        for i in 0..MAX_PLAN_THREADS + 3 {
            pool.give(vec![i]);
        }
        assert_eq!(pool.len(), MAX_PLAN_THREADS);
    }

    /// Image bits, counts and plan of `scene` rendered with `pools`.
    fn render(scene: &Scene, pools: &Pools) -> (Vec<u64>, RasterStats, String) {
        let (img, stats) = rasterize_in(scene, pools).unwrap();
        let img = Vec::<f64>::try_from(img.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let (n, s) = scene.check().unwrap();
        let plan = Plan::build(&HostScene::read(scene, n, s).unwrap(), pools).unwrap();
        (img.iter().map(|v| v.to_bits()).collect(), stats, comparable(plan))
    }

    fn within_cap(pools: &Pools) {
        assert!(pools.scratch.len() <= MAX_PLAN_THREADS, "{} scratches", pools.scratch.len());
        assert!(pools.gen.len() <= MAX_PLAN_THREADS, "{} fragment lists", pools.gen.len());
    }

    #[test]
    fn dirty_pools_give_bit_identical_results() {
        // Costly enough to be planned on several threads where there are cores.
        let scene = || Scene::grown(1, 24, Canvas::new(64, 48).unwrap(), 4, Device::Cpu).unwrap();
        let bigger = || Scene::grown(2, 96, Canvas::new(160, 120).unwrap(), 5, Device::Cpu);
        let smaller = Scene::random(1, 6, Canvas::new(24, 16).unwrap(), 6, Device::Cpu).unwrap();
        let first = render(&scene(), &Pools::new());
        let dirty = Pools::new();
        for other in [&bigger().unwrap(), &smaller, &bigger().unwrap()] {
            render(other, &dirty);
            within_cap(&dirty);
            assert!(dirty.scratch.len() > 0 && dirty.gen.len() > 0);
            assert!(render(&scene(), &dirty) == first, "differs after a {:?} scene", other.canvas);
        }
        // Callers at once return more buffers than the pools keep.
        std::thread::scope(|threads| {
            for _ in 0..2 * MAX_PLAN_THREADS {
                threads.spawn(|| rasterize_in(&bigger().unwrap(), &dirty).unwrap());
            }
        });
        within_cap(&dirty);
        assert!(render(&scene(), &dirty) == first, "differs after concurrent calls");
    }
}
