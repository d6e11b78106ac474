//! What the qemu backend needs on this host (`wrapix doctor`).

use super::Qemu;
use crate::backend::{Check, Probe};

pub fn probe(q: &Qemu) -> Probe {
    let mut checks = Vec::new();
    checks.push(match &q.qemu {
        Some(p) => Check::pass("qemu-system-x86_64", p.display().to_string()),
        None => Check::fail(
            "qemu-system-x86_64",
            "not installed",
            "sudo apt-get install qemu-system-x86",
        ),
    });
    checks.push(match &q.virtiofsd {
        Some(p) => Check::pass("virtiofsd", p.display().to_string()),
        None => Check::fail(
            "virtiofsd",
            "the Rust virtiofsd is not installed (qemu's C one cannot share read-only)",
            "cargo install virtiofsd (needs libseccomp-dev libcap-ng-dev), or set WRAPIX_VIRTIOFSD",
        ),
    });
    checks.push(match &q.kernel {
        Ok(k) => Check::pass(
            "guest kernel",
            format!("{} (modules {})", k.image.display(), k.modules.display()),
        ),
        Err(why) => Check::fail(
            "guest kernel",
            why.clone(),
            "sudo apt-get install linux-image-cloud-amd64, or set WRAPIX_QEMU_KERNEL",
        ),
    });
    checks.push(match (&q.passt, &q.pasta) {
        (Some(p), Some(_)) => Check::pass("passt (network open)", p.display().to_string()),
        _ => Check::fail(
            "passt (network open)",
            "passt and pasta are not installed: only --network none works",
            "sudo apt-get install passt",
        )
        .optional(),
    });
    let kvm = if q.kvm {
        Check::pass("KVM", "/dev/kvm usable")
    } else {
        Check::fail(
            "KVM",
            "no usable /dev/kvm (or the paravirtual kvm_pvm): VMs run under TCG, slowly (--require-kvm refuses that)",
            "enable virtualisation and join the kvm group",
        )
    };
    checks.push(if q.require_kvm { kvm } else { kvm.optional() });
    Probe {
        backend: "qemu",
        checks,
    }
}
