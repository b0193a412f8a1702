//! The scheduler: turns the pending part of the graph into a list of
//! dispatches for one command encoder.
//!
//! 1. Order: every node the targets need that has no value yet, inputs
//!    first (a post-order from the targets recorded last). Kernels are then
//!    emitted in that order except where variable updates impose
//!    anti-dependences (every read of a buffer before the update that
//!    overwrites it: program order, see `Tensor::assign`) and where a
//!    checkpoint's recomputed values run just before their first consumer.
//! 2. Fusion: an elementwise node whose only consumer is an elementwise node
//!    of the same shape is inlined into it (up to six input buffers and 64
//!    nodes per kernel); constants are inlined into every elementwise user.
//! 3. Lowering: op families describe their kernels (`kernel.rs`); where a
//!    family offers variants, autotune times them once (`tune.rs`).
//! 4. Buffer planning: each materialized value lives until its last consumer
//!    has been encoded, then goes back to the pool for the kernels after it
//!    (in-order execution within a submit makes this safe). Values that a
//!    tensor handle can still see are kept on their node. The same plan in a
//!    pool that only counts predicts a realize's peak memory.
//! 5. New pipelines are compiled together once planning ends.
//!
//! Files, one phase each: `fusion.rs` (2), `order.rs` (1, the emission
//! order), `updates.rs` (variable updates: in place, stale reads),
//! `lower.rs` (3: a node to kernels), `variants.rs` (autotune's choice),
//! `reduce.rs` (reductions' passes), `encoder.rs` (4 and 5: buffers,
//! dispatches, pipelines), `describe.rs` (the profiler's kernel names).

// FxHash: node ids are trusted keys, and SipHash was a large part of planning.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use crate::device::Gpu;
use crate::error::Result;
use crate::graph::{Node, NodeId, Op, topo_order};

use super::pool::{BufferPool, Storage};
use super::replay::{Lookup, Recorder};
use fusion::Fusion;

mod describe;
mod encoder;
mod fusion;
mod lower;
mod order;
mod reduce;
mod updates;
mod variants;

use updates::{check_stale, forget_graphs, in_place_updates, overwritten_buffers};

/// One kernel launch: bindings are `params` at 0, then `buffers` in order.
pub(crate) struct Dispatch {
    /// Set once planning is done (new pipelines are compiled together then).
    pub pipeline: Option<wgpu::ComputePipeline>,
    /// Index into the plan's pipelines to compile, until then.
    pending: Option<usize>,
    pub params: Vec<u32>,
    pub buffers: Vec<(wgpu::Buffer, u64)>,
    /// Channels split into this many independent groups.
    pub groups: [u32; 3],
    /// What it computes, recorded only while profiling.
    pub info: Option<super::profile::KernelInfo>,
}

impl Dispatch {
    /// A dispatch whose pipeline is compiled already (a replayed plan's).
    pub fn compiled(
        pipeline: wgpu::ComputePipeline,
        params: Vec<u32>,
        buffers: Vec<(wgpu::Buffer, u64)>,
        groups: [u32; 3],
        info: Option<super::profile::KernelInfo>,
    ) -> Dispatch {
        Dispatch {
            pipeline: Some(pipeline),
            pending: None,
            params,
            buffers,
            groups,
            info,
        }
    }
}

pub(crate) struct Plan {
    /// What recomputing checkpointed values costs (kernels, bytes, FLOPs).
    pub recomputed: Recomputed,
    /// Autotune's timing run of a variant on scratch buffers: not counted
    /// in the device's kernels and submits (`Counters` count the work asked for).
    pub timing: bool,
    pub dispatches: Vec<Dispatch>,
    /// Host data to upload before the kernels run.
    pub uploads: Vec<(wgpu::Buffer, Arc<[f32]>)>,
    /// The targets' values, in the order asked.
    pub targets: Vec<Storage>,
    /// Status words ([`Buf::Status`]) the kernels may set, each with what
    /// a nonzero one means: read back after the submit.
    pub checks: Vec<(Storage, String)>,
    /// The nodes this plan gives a value, listed only where it has
    /// `checks` (they are marked failed if one fails).
    pub kept: Vec<Arc<Node>>,
}

pub(super) struct Scheduler<'g> {
    gpu: &'g Gpu,
    plan: Plan,
    values: HashMap<NodeId, Storage>,
    /// The updates that write their variable's buffer (see `in_place_updates`).
    in_place: HashSet<NodeId>,
    /// While profiling: the name and FLOPs of the node being emitted; the
    /// FLOPs go to its first dispatch.
    label: Option<(String, u64)>,
    /// Pipelines not compiled yet, compiled together when planning ends.
    compile: Vec<(String, &'static str)>,
    compile_index: HashMap<(String, &'static str), usize>,
    /// Where buffers come from: the device's pool, or a simulated one when
    /// planning only to predict memory (`dry`: no kernels, no side effects).
    pool: std::sync::Arc<std::sync::Mutex<BufferPool>>,
    dry: bool,
    /// Dispatches recorded so far (also counted in a dry run).
    dispatched: usize,
    /// What recomputing checkpointed values costs in this plan.
    recomputed: Recomputed,
    /// The parameter words of the next dispatch that are constants of
    /// nodes: (word, node). Recorded for replay.
    constants: Vec<(usize, NodeId)>,
    /// Writes the plan down for replay (see `replay.rs`), when asked.
    recorder: std::cell::RefCell<Option<Recorder>>,
    /// Autotune keys met for the first time in this plan: all their nodes
    /// get the first variant (timing comes at the next realize).
    first_sights: HashSet<String>,
}

/// The cost of a plan's recomputed values (see `autodiff::checkpoint`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Recomputed {
    pub kernels: usize,
    pub bytes: u64,
    pub flops: u64,
}

/// Plans every kernel needed to give `targets` values.
pub(crate) fn plan(gpu: &Gpu, targets: &[Arc<Node>]) -> Result<Plan> {
    plan_in(gpu, targets, None)
}

/// The peak of live bytes (every buffer in use, of the whole device) that
/// realizing `targets` will reach: the realize planned for real — same
/// order, fusion, lowering and buffer reuse — in a simulated pool that
/// counts bytes without creating buffers, nothing submitted and no node
/// touched. Equals the pool's measured peak of that realize
/// (`MemoryStats::peak_live_bytes` after `Device::reset_peak_memory`),
/// except the one-time scratch buffers of autotune's timing runs.
// The pool type is shared with real devices, whose handles are not Send on wasm32.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
pub(crate) fn predict_peak(gpu: &Gpu, targets: &[Arc<Node>]) -> Result<u64> {
    Ok(predict(gpu, targets)?.0)
}

/// The peak (see `predict_peak`) and what recomputation costs in the plan.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
pub(crate) fn predict(gpu: &Gpu, targets: &[Arc<Node>]) -> Result<(u64, Recomputed)> {
    let simulated = std::sync::Arc::new(std::sync::Mutex::new(BufferPool::simulated()));
    let recomputed = plan_in(gpu, targets, Some(simulated.clone()))?.recomputed;
    let live = gpu
        .pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .stats()
        .live_bytes;
    let extra = simulated
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .stats()
        .peak_live_bytes;
    Ok((live + extra, recomputed))
}

/// What planning knows of a realize's graph before deciding anything.
pub(super) struct Pending<'a> {
    /// The nodes without a value, inputs first.
    nodes: Vec<&'a Arc<Node>>,
    target_ids: HashSet<NodeId>,
    /// The updates that write their variable's buffer (`in_place_updates`).
    in_place: HashSet<NodeId>,
    /// Values that an in-place update overwrites: that update.
    overwritten_by: HashMap<NodeId, NodeId>,
    /// Consumers of each node among the pending ones (filled only when
    /// the realize is planned, not replayed).
    consumers: HashMap<NodeId, Vec<&'a Arc<Node>>>,
}

impl<'a> Pending<'a> {
    fn new(order: &'a [Arc<Node>], targets: &[Arc<Node>]) -> Pending<'a> {
        let nodes: Vec<&Arc<Node>> = order.iter().filter(|n| !n.is_realized()).collect();
        let in_place = in_place_updates(&nodes);
        let overwritten_by = overwritten_buffers(order, &in_place);
        Pending {
            nodes,
            target_ids: targets.iter().map(|t| t.id).collect(),
            in_place,
            overwritten_by,
            consumers: HashMap::default(),
        }
    }

    /// Whether a node's value is stored on it: a target, a value a tensor
    /// handle can still see, or an upload or update.
    fn keep(&self, n: &Node) -> bool {
        self.target_ids.contains(&n.id)
            || n.handles.get() > 0
            || matches!(n.op, Op::Input(_) | Op::Indices(_) | Op::Assign)
    }

    fn find_consumers(&mut self) {
        for node in &self.nodes {
            for input in node.inputs().iter() {
                self.consumers.entry(input.id).or_default().push(node);
            }
        }
    }
}

/// What replay's cache says of a realize (see `replay.rs`).
enum Replay {
    /// Planned twice before: replayed.
    Done(Plan),
    /// Planned once before: this plan is recorded (its signature words).
    Record(Vec<u64>, Recorder),
    Plan,
}

fn look_up_replay(
    gpu: &Gpu,
    order: &[Arc<Node>],
    pending: &Pending,
    targets: &[Arc<Node>],
    profiling: bool,
) -> Replay {
    let mut cache = gpu.replay.lock().unwrap_or_else(|e| e.into_inner());
    let signature = super::replay::signature(
        order,
        targets,
        &|n| pending.keep(n),
        &pending.in_place,
        &pending.overwritten_by,
        &mut cache.families,
    );
    match cache.lookup(&signature.words) {
        Lookup::Replay(program) => {
            drop(cache);
            let plan = super::replay::replay(gpu, &program, order, profiling);
            forget_graphs(&pending.nodes, &pending.in_place);
            Replay::Done(plan)
        }
        Lookup::Record => Replay::Record(
            signature.words,
            Recorder::new(signature.position, order, &gpu.pool),
        ),
        Lookup::Plan => Replay::Plan,
    }
}

fn plan_in(
    gpu: &Gpu,
    targets: &[Arc<Node>],
    simulated: Option<std::sync::Arc<std::sync::Mutex<BufferPool>>>,
) -> Result<Plan> {
    // The pending order (a post-order from the targets) is the emission
    // order's default. The reverse pass records the last layer's adjoints
    // first, so the targets go in the order of the adjoints they are made
    // of (`adjoint_key`): in a training step the last layer's update comes
    // right after its gradient, then the layer before's, and each gradient
    // is freed as soon as its update ran; in a realize of gradients alone
    // each is computed as soon as its layer's adjoint is, and the values it
    // reads are freed then, instead of all being held until the end.
    let mut roots: Vec<Arc<Node>> = targets.to_vec();
    roots.sort_by_key(|n| (adjoint_key(n), std::cmp::Reverse(n.id)));
    let order = topo_order(&roots, |n| n.is_realized());
    check_stale(&order)?;
    // A value computed by a realize whose check failed is not a value.
    if let Some(e) = order.iter().find_map(|n| n.failed.borrow().clone()) {
        return Err(e);
    }
    let mut pending = Pending::new(&order, targets);
    let profiling = gpu
        .profile
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_some();

    // A structure planned twice before is replayed; one planned once is
    // recorded this time. Predictions always plan.
    let mut recording: Option<(Vec<u64>, Recorder)> = None;
    if simulated.is_none()
        && gpu
            .switches
            .plan_replay
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        match look_up_replay(gpu, &order, &pending, targets, profiling) {
            Replay::Done(plan) => return Ok(plan),
            Replay::Record(words, recorder) => recording = Some((words, recorder)),
            Replay::Plan => {}
        }
    }
    // Stops the pool's journal however planning ends.
    struct StopJournal<'p>(Option<&'p std::sync::Mutex<BufferPool>>);
    impl Drop for StopJournal<'_> {
        fn drop(&mut self) {
            if let Some(pool) = self.0 {
                Recorder::stop(pool);
            }
        }
    }
    let _journal = StopJournal(recording.as_ref().map(|_| &*gpu.pool));

    pending.find_consumers();
    let fusion = fusion::decide(&pending);
    if simulated.is_none() {
        gpu.counts
            .plans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut s = Scheduler::new(gpu);
    // Fusion has decided: the set moves to the encoder, no copy per plan.
    s.in_place = std::mem::take(&mut pending.in_place);
    let (signature, recorder) = recording.unzip();
    *s.recorder.get_mut() = recorder;
    if let Some(pool) = simulated {
        s.pool = pool;
        s.dry = true;
    }
    for node in order.iter().filter(|n| n.is_realized()) {
        s.values
            .insert(node.id, node.storage.borrow().clone().unwrap());
    }
    let kept = s.encode(&pending, &fusion, profiling || signature.is_some())?;
    // Only a plan with status words needs to know (no list per step else).
    if !s.dry && !s.plan.checks.is_empty() {
        s.plan.kept = pending
            .nodes
            .iter()
            .filter(|n| n.is_realized())
            .map(|n| (*n).clone())
            .collect();
    }
    s.plan.recomputed = s.recomputed;
    if s.dry {
        drop(kept);
        return Ok(s.plan);
    }
    s.plan.targets = targets.iter().map(|t| s.values[&t.id].clone()).collect();
    s.compile_pipelines();
    if let (Some(signature), Some(r)) = (signature, s.recorder.get_mut().take())
        && let Some(program) = r.finish(&s.pool, &s.plan)
    {
        let mut cache = gpu.replay.lock().unwrap_or_else(|e| e.into_inner());
        cache.store(signature, program);
    }
    forget_graphs(&pending.nodes, &s.in_place);
    Ok(s.plan)
}

impl Scheduler<'_> {
    /// Encodes every kernel of the plan in emission order, freeing each
    /// value after its last reader; `describing` names the kernels (for
    /// the profiler, or a recorded plan's replays). Returns the values a
    /// dry run keeps alive as a real one would store them on nodes.
    fn encode(
        &mut self,
        pending: &Pending,
        fusion: &Fusion,
        describing: bool,
    ) -> Result<Vec<Storage>> {
        let fused = |c: &Node, i: &Node| fusion.fused(c, i);
        let mut remaining: HashMap<NodeId, usize> = HashMap::default();
        let kernels: Vec<&Arc<Node>> = pending
            .nodes
            .iter()
            .copied()
            .filter(|n| fusion.materialized(pending, n))
            .collect();
        for node in &kernels {
            for id in fusion.kernel_inputs(node) {
                *remaining.entry(id).or_default() += 1;
            }
        }
        // Uploads happen (queue.write_buffer) before any kernel of the submit
        // runs, so their buffers must be taken from the pool before any kernel
        // releases one: otherwise an upload could land in a buffer that an
        // earlier kernel of this submit still uses.
        let mut uploaded: HashMap<NodeId, Storage> = HashMap::default();
        for node in pending
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Input(_) | Op::Indices(_)))
        {
            let value = self.emit(node, &|_, _| false)?;
            if let Some(r) = self.recorder.get_mut().as_mut() {
                r.upload(node.id, &value);
            }
            uploaded.insert(node.id, value);
        }
        let mut kept: Vec<Storage> = Vec::new();
        for node in order::emission_order(&kernels, fusion, pending)? {
            if describing {
                self.label = Some(describe::describe(node, &fused));
            }
            let before = self.dispatched;
            let value = match uploaded.remove(&node.id) {
                Some(v) => v,
                None => self.emit(node, &fused)?,
            };
            // Only a prediction reports recomputation: a real step skips the walk.
            // (A conversion run just in time is not a recomputation.)
            if self.dry && node.recompute.get() && !matches!(node.op, Op::Convert(_)) {
                self.recomputed.kernels += self.dispatched - before;
                self.recomputed.bytes += encoder::bytes_of(node.dtype.words(node.shape.numel()));
                self.recomputed.flops += describe::describe(node, &fused).1;
            }
            self.values.insert(node.id, value);
            for id in fusion.kernel_inputs(node) {
                let left = remaining.get_mut(&id).unwrap();
                *left -= 1;
                if *left == 0 && !pending.target_ids.contains(&id) {
                    self.values.remove(&id);
                }
            }
            if pending.keep(node) {
                let value = self.values[&node.id].clone();
                if self.dry {
                    kept.push(value);
                } else {
                    if let Some(r) = self.recorder.get_mut().as_mut() {
                        r.keep(&self.pool, node.id, &value);
                    }
                    *node.storage.borrow_mut() = Some(value);
                }
            }
        }
        Ok(kept)
    }
}

/// Where a target's computation sits in the reverse pass: the newest
/// adjoint node it is made of, found above the adjoints (an optimizer's
/// update arithmetic) within a few nodes; the target's own id if it is an
/// adjoint or none is found that near (a forward value).
fn adjoint_key(target: &Arc<Node>) -> NodeId {
    const LOOK: usize = 64;
    if target.adjoint {
        return target.id;
    }
    let mut newest = None;
    let mut stack = vec![target.clone()];
    let mut visited = 0;
    while let Some(n) = stack.pop() {
        visited += 1;
        if visited > LOOK {
            break;
        }
        for i in n.inputs().iter() {
            if i.adjoint {
                newest = newest.max(Some(i.id));
            } else if !i.is_realized() {
                stack.push(i.clone());
            }
        }
    }
    newest.unwrap_or(target.id)
}
