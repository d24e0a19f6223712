// SPDX-License-Identifier: GPL-2.0-only
//! `manifest.json`, the record of one run that `kmt run` leaves in its output directory
//! (docs/cli.md, "What a run leaves in its output directory"): what was asked, what was built and
//! booted, what came back, how long each phase took, and the outcome.

use serde::Serialize;

use crate::analysis::TraceFigures;
use crate::image::ImageBuild;
use crate::kernel::KernelBuild;
use crate::outcome::Outcome;
use crate::qemu::Accel;
use crate::share::Intake;

/// Seconds spent in each phase.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Phases {
    pub prerequisites_s: f64,
    pub kernel_s: f64,
    pub image_s: f64,
    pub boot_s: f64,
    pub analysis_s: f64,
    pub total_s: f64,
}

/// What QEMU did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct QemuInfo {
    pub command: String,
    pub version: Option<String>,
    pub accel: Option<Accel>,
    pub shutdown_reason: Option<String>,
    pub exit_status: Option<String>,
}

/// `manifest.json`: everything needed to know what this run was and to repeat it.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub kmt_manifest: u32,
    pub kmt_version: &'static str,
    pub outcome: Outcome,
    pub message: String,
    pub arch: &'static str,
    pub workload: String,
    pub param: Option<u64>,
    /// The `exec` workload's program.
    pub exec: Option<ExecInfo>,
    pub smp: u32,
    pub memory_mib: u32,
    pub timeout_s: u64,
    pub kernel_cmdline: String,
    pub qemu: QemuInfo,
    pub kernel: Option<KernelBuild>,
    pub image: Option<ImageBuild>,
    pub trace: Option<TraceFigures>,
    /// What came back from the guest's share: taken files, and what the guest left that kmt
    /// refused (docs/contracts.md §2; `share.rs`).
    pub share: Option<Intake>,
    pub phases: Phases,
}

/// The `exec` workload's program, as the manifest records it.
#[derive(Debug, Clone, Serialize)]
pub struct ExecInfo {
    pub program: String,
    pub args: Vec<String>,
    pub sha256: String,
    pub bytes: u64,
}
