//! How the machine idles its CPUs, which the bench names beside the CPU model: on a
//! virtual machine whose idle CPUs halt at once, a thread that sleeps between two parallel
//! ops is woken through the hypervisor, late, and a multi-thread training step can run at
//! two speeds for seconds at a time. Measured on a 2-core AMD EPYC VM (cpuidle `haltpoll`,
//! `guest_halt_poll_ns = 0`): ten bench rounds of our two-thread ShuffleNetV2 step drew
//! 379 378 384 382 384 302 310 319 381 380 img/s, and 371–390 in all ten once the guest
//! polled 200 µs before halting; PyTorch's OpenMP workers spin before they sleep.

/// A note for speed figures when the CPUs halt without polling first, `None` otherwise
/// (bare metal, other idle drivers, or files that cannot be read).
pub fn halting_note() -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    note_for(
        read("/sys/devices/system/cpu/cpuidle/current_driver").as_deref(),
        read("/sys/module/haltpoll/parameters/guest_halt_poll_ns").as_deref(),
    )
}

/// [`halting_note`] from the contents of the two sysfs files.
fn note_for(driver: Option<&str>, poll_ns: Option<&str>) -> Option<String> {
    let poll_ns: u64 = poll_ns?.trim().parse().ok()?;
    (driver?.trim() == "haltpoll" && poll_ns == 0).then(|| {
        "idle CPUs halt at once here (cpuidle haltpoll, guest_halt_poll_ns = 0): a thread \
         that sleeps between two ops wakes late, so multi-thread rounds may draw two speeds \
         (README, `harness bench`)"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::note_for;

    #[test]
    fn only_a_haltpoll_guest_that_never_polls_gets_the_note() {
        assert!(note_for(Some("haltpoll\n"), Some("0\n")).is_some());
        assert!(note_for(Some("haltpoll\n"), Some("200000\n")).is_none());
        assert!(note_for(Some("intel_idle\n"), Some("0\n")).is_none());
        assert!(note_for(None, Some("0")).is_none());
        assert!(note_for(Some("haltpoll"), None).is_none());
        assert!(note_for(Some("haltpoll"), Some("garbage")).is_none());
    }
}
