use std::time::{Duration, SystemTime};

use super::*;

fn fast() -> ClaimSettings {
    ClaimSettings {
        heartbeat: Duration::from_millis(40),
        timeout: Duration::from_secs(5),
    }
}

fn write_holder(run_dir: &Path, h: &Holder) {
    std::fs::create_dir_all(run_dir).unwrap();
    std::fs::write(run_dir.join(CLAIM_FILE), serde_json::to_string(h).unwrap()).unwrap();
}

/// Set the modification time of `path` `secs` seconds back.
fn make_old(path: &Path, secs: u64) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

fn holder(host: &str, pid: u32, pid_start: Option<u64>) -> Holder {
    Holder {
        host: host.into(),
        pid,
        pid_start,
        claimed_at: 0.0,
        token: format!("{host}:{pid}:t"),
        slurm_job: None,
    }
}

fn claimed(a: Attempt) -> (Claim, Option<String>) {
    match a {
        Attempt::Claimed { claim, took_over } => (claim, took_over),
        Attempt::Busy(h) => panic!("expected a claim, busy with {}", h.describe()),
    }
}

#[test]
fn a_claim_is_exclusive_until_released() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r1");
    let (claim, took) = claimed(try_claim(&run, "stl seed 0", &fast()).unwrap());
    assert!(took.is_none());
    assert_eq!(claim.holder().pid, std::process::id());
    match try_claim(&run, "stl seed 0", &fast()).unwrap() {
        Attempt::Busy(h) => assert_eq!(h.token, claim.holder().token),
        Attempt::Claimed { .. } => panic!("claimed twice"),
    }
    drop(claim);
    assert!(!run.join(CLAIM_FILE).exists());
    let (_again, _) = claimed(try_claim(&run, "stl seed 0", &fast()).unwrap());
    let log = std::fs::read_to_string(tmp.path().join(LOG_FILE)).unwrap();
    let events: Vec<&str> = log
        .lines()
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(events, ["claimed", "released", "claimed"], "{log}");
    assert!(log.contains(" r1 stl seed 0"), "{log}");
}

#[test]
fn a_dead_holder_on_this_host_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r2");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    write_holder(&run, &holder(&host(), dead, None));
    let (claim, took) = claimed(try_claim(&run, "x", &fast()).unwrap());
    let took = took.unwrap();
    assert!(took.contains(&format!("pid {dead} on")), "{took}");
    assert!(took.contains("is gone"), "{took}");
    // (The token, not the whole holder: JSON need not give back a float's last bit.)
    assert_eq!(
        read_holder(&run.join(CLAIM_FILE)).unwrap().token,
        claim.holder().token
    );
    let log = std::fs::read_to_string(tmp.path().join(LOG_FILE)).unwrap();
    assert!(log.contains(" took over r2 x: from pid "), "{log}");
}

#[test]
fn a_reused_pid_does_not_keep_a_claim() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r3");
    // pid 1 is alive, but started at another tick than the holder's.
    let start = process_start(1).unwrap();
    write_holder(&run, &holder(&host(), 1, Some(start + 1)));
    let (_claim, took) = claimed(try_claim(&run, "x", &fast()).unwrap());
    assert!(took.unwrap().contains("pid 1 on"));
    // The same pid with its own start time is alive.
    let run = tmp.path().join("r3b");
    write_holder(&run, &holder(&host(), 1, Some(start)));
    assert!(matches!(
        try_claim(&run, "x", &fast()).unwrap(),
        Attempt::Busy(_)
    ));
}

#[test]
fn another_hosts_claim_expires_with_its_heartbeat() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r4");
    write_holder(&run, &holder("node-b", 4242, Some(7)));
    assert!(matches!(
        try_claim(&run, "x", &fast()).unwrap(),
        Attempt::Busy(ref h) if h.host == "node-b"
    ));
    make_old(&run.join(CLAIM_FILE), 6);
    let view = inspect(&run, &fast());
    assert!(
        matches!(&view, ClaimView::Stale { reason, .. } if reason.contains("no heartbeat from node-b for 6 s (timeout 5 s)")),
        "{view:?}"
    );
    let (_claim, took) = claimed(try_claim(&run, "x", &fast()).unwrap());
    assert!(took.unwrap().starts_with("from pid 4242 on node-b:"));
}

#[test]
fn the_heartbeat_keeps_a_claim_fresh_and_notices_a_takeover() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r5");
    let (claim, _) = claimed(try_claim(&run, "x", &fast()).unwrap());
    let lock = run.join(CLAIM_FILE);
    make_old(&lock, 60);
    std::thread::sleep(Duration::from_millis(200));
    let age = SystemTime::now()
        .duration_since(std::fs::metadata(&lock).unwrap().modified().unwrap())
        .unwrap_or_default();
    assert!(
        age < Duration::from_secs(2),
        "heartbeat did not refresh: {age:?}"
    );
    assert!(!claim.is_lost());
    // Someone judged us dead and replaced the claim: we notice and leave theirs alone.
    std::fs::remove_file(&lock).unwrap();
    write_holder(&run, &holder("node-c", 9, None));
    std::thread::sleep(Duration::from_millis(200));
    assert!(claim.is_lost());
    drop(claim);
    assert_eq!(read_holder(&lock).unwrap().host, "node-c");
}

#[test]
fn a_held_takeover_lock_keeps_others_out_and_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r6");
    write_holder(&run, &holder("node-b", 1, None));
    let lock = run.join(CLAIM_FILE);
    make_old(&lock, 60);
    let guard = run.join(TAKEOVER_FILE);
    std::fs::write(&guard, "").unwrap();
    assert!(matches!(
        try_claim(&run, "x", &fast()).unwrap(),
        Attempt::Busy(_)
    ));
    make_old(&guard, 31);
    // The first look removes the abandoned guard, the next takes the claim.
    assert!(matches!(
        try_claim(&run, "x", &fast()).unwrap(),
        Attempt::Busy(_)
    ));
    let (_claim, took) = claimed(try_claim(&run, "x", &fast()).unwrap());
    assert!(took.is_some());
}

#[test]
fn settings_are_checked() {
    let d = ClaimSettings::parse(None, None).unwrap();
    assert_eq!((d.heartbeat.as_secs(), d.timeout.as_secs()), (10, 120));
    let s = ClaimSettings::parse(Some("0.5"), Some("2")).unwrap();
    assert_eq!(s.timeout, Duration::from_secs(2));
    for (h, t, says) in [
        (
            Some("0"),
            None,
            "HARNESS_CLAIM_HEARTBEAT_S=\"0\": expected a positive number",
        ),
        (None, Some("soon"), "HARNESS_CLAIM_TIMEOUT_S=\"soon\""),
        (Some("10"), Some("20"), "must be at least three heartbeats"),
    ] {
        let e = ClaimSettings::parse(h, t).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
}

#[test]
fn timestamps_are_utc() {
    // python: datetime.fromtimestamp(t, timezone.utc).isoformat()
    assert_eq!(utc_timestamp(0.0), "1970-01-01T00:00:00.000Z");
    assert_eq!(utc_timestamp(1796153400.5), "2026-12-01T19:30:00.500Z");
    assert_eq!(utc_timestamp(951782400.25), "2000-02-29T00:00:00.250Z");
}

#[test]
fn releasing_does_not_wait_for_the_next_heartbeat() {
    let tmp = tempfile::tempdir().unwrap();
    let (claim, _) =
        claimed(try_claim(&tmp.path().join("r7"), "x", &ClaimSettings::default()).unwrap());
    let t0 = std::time::Instant::now();
    drop(claim);
    // The heartbeat is 10 s; a release that waited for it held up every next run.
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
