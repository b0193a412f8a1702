//! Where a computation's time goes: [`crate::Device::profile`] records
//! every kernel of every realize and read it runs — what it computes, its
//! dispatch size, the bytes it reads and writes, its floating-point work
//! and, where the adapter has timestamp queries, its GPU time — plus the
//! CPU time spent recording the graph, planning and encoding. Shown as a
//! table sorted by time ([`Profile::table`]) or as a Chrome trace-event
//! file that Perfetto and chrome://tracing open ([`Profile::chrome_trace`]).

use std::collections::HashMap;

/// One kernel launch.
#[derive(Clone, Debug)]
pub struct KernelRecord {
    /// What it computes: the op (or family) with the ops fused into it and
    /// the output's shape, e.g. `matmul [128, 256]` or
    /// `add(mul·exp) [128, 256]`.
    pub name: String,
    /// Workgroups per dimension.
    pub groups: [u32; 3],
    /// Bytes of the buffers it reads and of those it writes.
    pub bytes_read: u64,
    /// Bytes the kernel wrote.
    pub bytes_written: u64,
    /// Floating-point operations (multiply-adds count two; 0 for copies).
    pub flops: u64,
    /// Its GPU time from timestamp queries (`None` without them).
    pub gpu_ns: Option<u64>,
    /// Which submit (realize or read) it belonged to.
    pub submit: usize,
    /// When it started, in ns after the profile began (GPU clock aligned to
    /// the submit's CPU time; `None` without timestamps).
    pub start_ns: Option<u64>,
}

/// One realize or read.
#[derive(Clone, Debug, Default)]
pub struct SubmitRecord {
    /// When the call began, in ns after the profile began.
    pub start_ns: u64,
    /// CPU time planning (ordering, fusion, buffers, kernel choice).
    pub plan_ns: u64,
    /// CPU time encoding the dispatches and submitting them.
    pub encode_ns: u64,
    /// The whole call (planning, encoding and, for reads, waiting for the
    /// GPU and copying back).
    pub total_ns: u64,
    /// Kernels it ran.
    pub kernels: usize,
}

/// A profile: see the module docs.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    /// Every kernel that ran, in order.
    pub kernels: Vec<KernelRecord>,
    /// Every submit, in order.
    pub submits: Vec<SubmitRecord>,
    /// Wall time of the profiled closure.
    pub wall_ns: u64,
    /// Whether kernels carry GPU times (the adapter has timestamp queries).
    pub timestamps: bool,
    /// The adapter, for the table's heading.
    pub adapter: String,
}

impl Profile {
    /// CPU time outside webgrad's realize and read calls: building the
    /// graph (and whatever else the closure did).
    pub fn recording_ns(&self) -> u64 {
        let inside: u64 = self.submits.iter().map(|s| s.total_ns).sum();
        self.wall_ns.saturating_sub(inside)
    }

    /// Total GPU time of the kernels (0 without timestamps).
    pub fn gpu_ns(&self) -> u64 {
        self.kernels.iter().filter_map(|k| k.gpu_ns).sum()
    }

    /// Kernels with the same name summed, most expensive first (by GPU
    /// time, or by bytes moved without timestamps), followed by the CPU
    /// side: recording, planning, encoding and waiting.
    pub fn table(&self) -> String {
        struct Row {
            name: String,
            count: usize,
            ns: u64,
            flops: u64,
            bytes: u64,
            groups: u64,
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for k in &self.kernels {
            let i = *index.entry(&k.name).or_insert_with(|| {
                rows.push(Row {
                    name: k.name.clone(),
                    count: 0,
                    ns: 0,
                    flops: 0,
                    bytes: 0,
                    groups: 0,
                });
                rows.len() - 1
            });
            let r = &mut rows[i];
            r.count += 1;
            r.ns += k.gpu_ns.unwrap_or(0);
            r.flops += k.flops;
            r.bytes += k.bytes_read + k.bytes_written;
            r.groups += k.groups.iter().map(|&g| g as u64).product::<u64>();
        }
        rows.sort_by(|a, b| b.ns.cmp(&a.ns).then(b.bytes.cmp(&a.bytes)));
        let gpu = self.gpu_ns().max(1);
        let mut out = format!(
            "profile on {}: {} submits, {} kernels, wall {:.3} ms{}\n",
            self.adapter,
            self.submits.len(),
            self.kernels.len(),
            ms(self.wall_ns),
            if self.timestamps {
                format!(", GPU {:.3} ms", ms(self.gpu_ns()))
            } else {
                " (no timestamp queries: kernels untimed)".into()
            }
        );
        out += &format!(
            "{:>9} {:>6} {:>5} {:>9} {:>9} {:>9} {:>8}  kernel\n",
            "GPU ms", "%", "runs", "GFLOP/s", "GB/s", "MB", "groups"
        );
        for r in &rows {
            let secs = r.ns as f64 * 1e-9;
            let rate = |x: u64| {
                if r.ns > 0 {
                    format!("{:.1}", x as f64 / secs * 1e-9)
                } else {
                    "-".into()
                }
            };
            out += &format!(
                "{:>9.3} {:>5.1}% {:>5} {:>9} {:>9} {:>9.2} {:>8}  {}\n",
                ms(r.ns),
                100.0 * r.ns as f64 / gpu as f64,
                r.count,
                if r.flops > 0 {
                    rate(r.flops)
                } else {
                    "-".into()
                },
                rate(r.bytes),
                r.bytes as f64 * 1e-6,
                r.groups,
                r.name
            );
        }
        let plan: u64 = self.submits.iter().map(|s| s.plan_ns).sum();
        let encode: u64 = self.submits.iter().map(|s| s.encode_ns).sum();
        let total: u64 = self.submits.iter().map(|s| s.total_ns).sum();
        out += &format!(
            "CPU: recording {:.3} ms, planning {:.3} ms, encoding and submitting {:.3} ms, waiting and reading back {:.3} ms\n",
            ms(self.recording_ns()),
            ms(plan),
            ms(encode),
            ms(total.saturating_sub(plan + encode))
        );
        out
    }

    /// The profile as Chrome trace-event JSON: a CPU track (recording gaps,
    /// planning, encoding, waiting per call) and, with timestamps, a GPU
    /// track with every kernel, its sizes in the event's arguments.
    pub fn chrome_trace(&self) -> String {
        use serde_json::json;
        let us = |ns: u64| ns as f64 / 1000.0;
        let mut events = vec![
            json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": format!("webgrad on {}", self.adapter)}}),
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "CPU"}}),
            json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": 2, "args": {"name": "GPU"}}),
        ];
        for (i, s) in self.submits.iter().enumerate() {
            let phases = [
                ("plan", s.start_ns, s.plan_ns),
                ("encode + submit", s.start_ns + s.plan_ns, s.encode_ns),
                (
                    "wait + read back",
                    s.start_ns + s.plan_ns + s.encode_ns,
                    s.total_ns.saturating_sub(s.plan_ns + s.encode_ns),
                ),
            ];
            for (name, start, dur) in phases {
                if dur > 0 {
                    events.push(json!({
                        "name": name, "cat": "cpu", "ph": "X", "pid": 1, "tid": 1,
                        "ts": us(start), "dur": us(dur), "args": {"submit": i, "kernels": s.kernels},
                    }));
                }
            }
        }
        for k in &self.kernels {
            if let (Some(start), Some(dur)) = (k.start_ns, k.gpu_ns) {
                events.push(json!({
                    "name": k.name, "cat": "gpu", "ph": "X", "pid": 1, "tid": 2,
                    "ts": us(start), "dur": us(dur),
                    "args": {
                        "submit": k.submit, "groups": k.groups, "bytes_read": k.bytes_read,
                        "bytes_written": k.bytes_written, "flops": k.flops,
                    },
                }));
            }
        }
        serde_json::to_string(&json!({ "traceEvents": events, "displayTimeUnit": "ms" }))
            .expect("plain JSON values serialize")
    }
}

fn ms(ns: u64) -> f64 {
    ns as f64 * 1e-6
}
