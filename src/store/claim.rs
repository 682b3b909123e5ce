//! Claims: which process is executing a run, so that several `harness run` processes, Slurm
//! array tasks or a cron job overlapping a manual run can share one results folder without
//! training a run twice or deleting each other's files.
//!
//! A claim is `results/<run_id>/claim.lock`, created with `O_CREAT | O_EXCL` (one creator
//! wins, also on NFS ≥ 3) and holding the holder's host, pid, the pid's start time (so a
//! reused pid is not mistaken for the holder), when it claimed, a token and its Slurm job.
//! The heartbeat is the lock file's modification time, refreshed by the holder through its
//! open handle every `heartbeat` seconds: a claim replaced by another process then keeps its
//! own inode, and the old holder notices (the path names another inode) instead of
//! refreshing someone else's claim.
//!
//! A claim is stale when its holder is gone: on the same host, its pid is dead (or now
//! belongs to a younger process); on another host, which cannot see the pid, the heartbeat
//! is older than `timeout`. A stale claim is taken over under a second, short-lived lock
//! (`claim.lock.takeover`), re-reading the claim inside it so that two processes judging the
//! same stale claim cannot both take it, and the takeover is logged with its reason.
//!
//! Every claim, takeover, wait and release is appended to `results/claims.log`, one line per
//! event written with a single `O_APPEND` write (atomic between processes on a local file
//! system; on NFS lines of concurrent writers may interleave, the claims themselves stay
//! exclusive).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::status::now;
use crate::error::{Error, Result};
use crate::util::provenance::host;

pub const CLAIM_FILE: &str = "claim.lock";
const TAKEOVER_FILE: &str = "claim.lock.takeover";
/// A takeover lock older than this belongs to a process that died while taking over.
const TAKEOVER_GRACE: Duration = Duration::from_secs(30);
pub const LOG_FILE: &str = "claims.log";

/// Who holds a claim: what `claim.lock` contains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// Start of the process in clock ticks after boot (`/proc/<pid>/stat`, field 22).
    pub pid_start: Option<u64>,
    /// Unix seconds.
    pub claimed_at: f64,
    /// Unique per claim: tells a re-created claim from the one judged stale.
    pub token: String,
    /// `SLURM_JOB_ID` (and array task) of the holder, when it runs under Slurm.
    #[serde(default)]
    pub slurm_job: Option<String>,
}

impl Holder {
    fn this_process() -> Holder {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let host = host();
        let claimed_at = now();
        let slurm_job = std::env::var("SLURM_ARRAY_JOB_ID")
            .ok()
            .zip(std::env::var("SLURM_ARRAY_TASK_ID").ok())
            .map(|(j, t)| format!("{j}_{t}"))
            .or_else(|| std::env::var("SLURM_JOB_ID").ok());
        Holder {
            token: format!(
                "{host}:{pid}:{:.6}:{}",
                claimed_at,
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
            host,
            pid,
            pid_start: process_start(pid),
            claimed_at,
            slurm_job,
        }
    }

    /// `pid 4242 on node-a (Slurm job 17_3)`.
    pub fn describe(&self) -> String {
        let job = self
            .slurm_job
            .as_ref()
            .map(|j| format!(" (Slurm job {j})"))
            .unwrap_or_default();
        format!("pid {} on {}{job}", self.pid, self.host)
    }
}

/// How often a holder proves it is alive, and how long a silent holder on another host is
/// trusted. Set by `HARNESS_CLAIM_HEARTBEAT_S` and `HARNESS_CLAIM_TIMEOUT_S`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimSettings {
    pub heartbeat: Duration,
    pub timeout: Duration,
}

impl Default for ClaimSettings {
    fn default() -> Self {
        ClaimSettings {
            heartbeat: Duration::from_secs(10),
            timeout: Duration::from_secs(120),
        }
    }
}

impl ClaimSettings {
    pub fn from_env() -> Result<ClaimSettings> {
        let var = |name| std::env::var(name).ok();
        ClaimSettings::parse(
            var("HARNESS_CLAIM_HEARTBEAT_S").as_deref(),
            var("HARNESS_CLAIM_TIMEOUT_S").as_deref(),
        )
    }

    /// The settings from the two variables' values (`None`: unset, the default).
    pub fn parse(heartbeat: Option<&str>, timeout: Option<&str>) -> Result<ClaimSettings> {
        let d = ClaimSettings::default();
        let read = |name: &str, value: Option<&str>, default: Duration| -> Result<Duration> {
            let Some(v) = value else {
                return Ok(default);
            };
            match v.trim().parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
                _ => Err(Error::input(format!(
                    "{name}={v:?}: expected a positive number of seconds"
                ))),
            }
        };
        let s = ClaimSettings {
            heartbeat: read("HARNESS_CLAIM_HEARTBEAT_S", heartbeat, d.heartbeat)?,
            timeout: read("HARNESS_CLAIM_TIMEOUT_S", timeout, d.timeout)?,
        };
        if s.timeout < s.heartbeat * 3 {
            return Err(Error::input(format!(
                "HARNESS_CLAIM_TIMEOUT_S ({:.1} s) must be at least three heartbeats (HARNESS_CLAIM_HEARTBEAT_S = {:.1} s), or live holders on other hosts look dead",
                s.timeout.as_secs_f64(),
                s.heartbeat.as_secs_f64()
            )));
        }
        Ok(s)
    }
}

/// What is known about a run's claim without taking it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimView {
    Free,
    Live(Holder),
    /// The holder is gone; the reason says how we know.
    Stale {
        holder: Option<Holder>,
        reason: String,
    },
}

/// Look at the claim of the run folder `run_dir`.
pub fn inspect(run_dir: &Path, settings: &ClaimSettings) -> ClaimView {
    let path = run_dir.join(CLAIM_FILE);
    let Ok(meta) = std::fs::metadata(&path) else {
        return ClaimView::Free;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    let holder: Option<Holder> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    match holder {
        // Created but not yet written, or written by a process that died in between.
        None if age > settings.timeout => ClaimView::Stale {
            holder: None,
            reason: format!(
                "the claim file is empty or unreadable and {:.0} s old",
                age.as_secs_f64()
            ),
        },
        None => ClaimView::Live(unknown()),
        Some(h) if h.host == host() => {
            if process_alive(h.pid, h.pid_start) {
                ClaimView::Live(h)
            } else {
                let reason = format!("pid {} on {} is gone", h.pid, h.host);
                ClaimView::Stale {
                    holder: Some(h),
                    reason,
                }
            }
        }
        Some(h) if age > settings.timeout => {
            let reason = format!(
                "no heartbeat from {} for {:.0} s (timeout {:.0} s)",
                h.host,
                age.as_secs_f64(),
                settings.timeout.as_secs_f64()
            );
            ClaimView::Stale {
                holder: Some(h),
                reason,
            }
        }
        Some(h) => ClaimView::Live(h),
    }
}

/// The state to show for a run with `state` in `run_dir`: a `running` run whose claim is not
/// held by a live process (killed, machine restarted, on any host) is `interrupted`.
pub fn shown_state(
    run_dir: &Path,
    state: super::status::State,
    settings: &ClaimSettings,
) -> &'static str {
    match (state, inspect(run_dir, settings)) {
        (super::status::State::Running, ClaimView::Live(_)) => "running",
        (super::status::State::Running, _) => "interrupted",
        (st, _) => st.as_str(),
    }
}

/// The outcome of trying to claim a run.
pub enum Attempt {
    /// Ours; `took_over` says whose stale claim was replaced and why.
    Claimed {
        claim: Claim,
        took_over: Option<String>,
    },
    /// Another live process holds it.
    Busy(Holder),
}

/// A held claim. Dropping it stops the heartbeat and removes the lock file (unless another
/// process has taken the claim over meanwhile).
pub struct Claim {
    path: PathBuf,
    holder: Holder,
    file: Arc<File>,
    lost: Arc<AtomicBool>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    beat: Option<JoinHandle<()>>,
    log: ClaimLog,
}

impl Claim {
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Another process has replaced this claim (after judging it stale): stop writing.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed) || !same_file(&self.file, &self.path)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        {
            let (flag, cv) = &*self.stop;
            *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(b) = self.beat.take() {
            let _ = b.join();
        }
        if self.is_lost() {
            return;
        }
        let _ = std::fs::remove_file(&self.path);
        self.log.event("released", "");
    }
}

/// Try to claim the run in `run_dir` (`<results>/<run_id>`); `label` names it in the log.
pub fn try_claim(run_dir: &Path, label: &str, settings: &ClaimSettings) -> Result<Attempt> {
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    let log = ClaimLog::new(run_dir, label);
    let path = run_dir.join(CLAIM_FILE);
    if let Some(claim) = create(&path, settings, &log)? {
        log.event("claimed", "");
        return Ok(Attempt::Claimed {
            claim,
            took_over: None,
        });
    }
    match inspect(run_dir, settings) {
        // Released between our attempt and the look: try once more, next poll otherwise.
        ClaimView::Free => match create(&path, settings, &log)? {
            Some(claim) => {
                log.event("claimed", "");
                Ok(Attempt::Claimed {
                    claim,
                    took_over: None,
                })
            }
            None => Ok(Attempt::Busy(read_holder(&path).unwrap_or_else(unknown))),
        },
        ClaimView::Live(h) => Ok(Attempt::Busy(h)),
        ClaimView::Stale { holder, reason } => take_over(run_dir, holder, reason, settings, log),
    }
}

fn unknown() -> Holder {
    Holder {
        host: "?".into(),
        pid: 0,
        pid_start: None,
        claimed_at: 0.0,
        token: String::new(),
        slurm_job: None,
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Replace a stale claim, under the takeover lock so only one process does.
fn take_over(
    run_dir: &Path,
    judged: Option<Holder>,
    reason: String,
    settings: &ClaimSettings,
    log: ClaimLog,
) -> Result<Attempt> {
    let path = run_dir.join(CLAIM_FILE);
    let guard_path = run_dir.join(TAKEOVER_FILE);
    let busy = || Attempt::Busy(judged.clone().unwrap_or_else(unknown));
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&guard_path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let old = std::fs::metadata(&guard_path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > TAKEOVER_GRACE);
            if old {
                let _ = std::fs::remove_file(&guard_path);
            }
            return Ok(busy());
        }
        Err(e) => return Err(Error::io(&guard_path, e)),
    }
    let result = (|| {
        // Still the claim we judged? A process may have released it and another claimed it.
        let current = read_holder(&path);
        if current.as_ref().map(|h| &h.token) != judged.as_ref().map(|h| &h.token) {
            return Ok(None);
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        create(&path, settings, &log)
    })();
    let _ = std::fs::remove_file(&guard_path);
    match result? {
        Some(claim) => {
            let from = judged
                .as_ref()
                .map(Holder::describe)
                .unwrap_or_else(|| "an unknown holder".into());
            let note = format!("from {from}: {reason}");
            log.event("took over", &note);
            Ok(Attempt::Claimed {
                claim,
                took_over: Some(note),
            })
        }
        None => Ok(busy()),
    }
}

/// Create the lock file exclusively and start its heartbeat; `None` if it exists.
fn create(path: &Path, settings: &ClaimSettings, log: &ClaimLog) -> Result<Option<Claim>> {
    let mut file = match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let holder = Holder::this_process();
    let text = serde_json::to_string_pretty(&holder).unwrap_or_default();
    if let Err(e) = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
    {
        let _ = std::fs::remove_file(path);
        return Err(Error::io(path, e));
    }
    let file = Arc::new(file);
    let lost = Arc::new(AtomicBool::new(false));
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let beat = {
        let (file, lost, stop) = (file.clone(), lost.clone(), stop.clone());
        let (at, every, log) = (path.to_path_buf(), settings.heartbeat, log.clone());
        std::thread::Builder::new()
            .name("claim-heartbeat".into())
            .spawn(move || heartbeat(&file, &at, every, &lost, &stop, &log))
    };
    let beat = match beat {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(Error::io(path, e));
        }
    };
    Ok(Some(Claim {
        path: path.to_path_buf(),
        holder,
        file,
        lost,
        stop,
        beat: Some(beat),
        log: log.clone(),
    }))
}

/// Refresh the lock file's modification time until stopped; notice when the claim has been
/// replaced (the path no longer names our inode) and stop refreshing then.
fn heartbeat(
    file: &File,
    path: &Path,
    every: Duration,
    lost: &AtomicBool,
    stop: &(Mutex<bool>, Condvar),
    log: &ClaimLog,
) {
    let (flag, cv) = stop;
    let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        // Checked before waiting too: a claim released before this thread first got the
        // lock has already sent its only notification.
        if *stopped {
            return;
        }
        let (g, _) = cv
            .wait_timeout(stopped, every)
            .unwrap_or_else(|e| e.into_inner());
        stopped = g;
        if *stopped {
            return;
        }
        if !same_file(file, path) {
            lost.store(true, Ordering::Relaxed);
            log.event("lost", "another process took the claim over");
            return;
        }
        // A failed refresh (a full or read-only disk) only makes the claim look older.
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Whether `path` still names the file behind `file`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether process `pid` runs and is the one that started at `start` (a reused pid is not).
/// Zombies count as gone: they hold no claim's work any more.
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Some((state, started)) = process_stat(pid) else {
        return false;
    };
    state != 'Z' && start.is_none_or(|s| s == started)
}

fn process_start(pid: u32) -> Option<u64> {
    process_stat(pid).map(|(_, s)| s)
}

/// State letter and start time (field 22) of `/proc/<pid>/stat`; the command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its last `)`.
fn process_stat(pid: u32) -> Option<(char, u64)> {
    let mut text = String::new();
    File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 lie between the state (3) and the start time (22).
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Appends claim events to `<results>/claims.log`.
#[derive(Clone)]
struct ClaimLog {
    path: PathBuf,
    run_id: String,
    label: String,
}

impl ClaimLog {
    fn new(run_dir: &Path, label: &str) -> ClaimLog {
        let results = run_dir.parent().unwrap_or(Path::new("."));
        ClaimLog {
            path: results.join(LOG_FILE),
            run_id: run_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            label: label.to_string(),
        }
    }

    /// One line, one write: `<UTC time> <host> pid <pid> <event> <run_id> <label>[: note]`.
    fn event(&self, what: &str, note: &str) {
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(": {note}")
        };
        let line = format!(
            "{} {} pid {} {what} {} {}{note}\n",
            utc_timestamp(now()),
            host(),
            std::process::id(),
            self.run_id,
            self.label
        );
        // The log is for people; a claim never depends on it being written.
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// `2026-12-01T19:30:00.123Z` for Unix seconds (days to a civil date: Howard Hinnant's
/// algorithm).
pub fn utc_timestamp(unix_s: f64) -> String {
    let millis = (unix_s * 1000.0).round() as i64;
    let (days, ms) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
#[path = "claim_tests.rs"]
mod tests;
