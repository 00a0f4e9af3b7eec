//! Replacing a running gateway without dropping a request (Pingora's graceful upgrade).
//!
//! `poolgate serve --upgrade` finds the running process by its pid file, and once it
//! listens on the upgrade socket, tells it to hand over (`SIGQUIT`). The old process sends
//! its listening sockets, keeps accepting on them beside the new one for a few seconds,
//! then stops accepting, finishes what is in flight (`drain_timeout`) and exits. Sessions
//! live in cookies and the store, so they outlive both.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pingora::server::ExecutionPhase;

/// What Pingora says of its phases as it runs.
type Phases = tokio::sync::broadcast::Receiver<ExecutionPhase>;

/// The running gateway named by `pid_file`.
pub fn running(pid_file: &Path) -> anyhow::Result<Pid> {
    let text = std::fs::read_to_string(pid_file).with_context(|| {
        format!(
            "--upgrade: no running poolgate to take over from: cannot read {}",
            pid_file.display()
        )
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("--upgrade: {} holds no process id", pid_file.display()))?;
    let pid = Pid::from_raw(pid);
    if kill(pid, None).is_err() {
        bail!(
            "--upgrade: process {pid} of {} is not running: start without --upgrade",
            pid_file.display()
        );
    }
    // A stale pid file may name another program by now: it is not to be signalled.
    let name = |exe: std::path::PathBuf| {
        exe.file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(" (deleted)").to_owned())
            .unwrap_or_default()
    };
    let theirs = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(name)
        .unwrap_or_default();
    let ours = std::env::current_exe().map(name).unwrap_or_default();
    if theirs != ours {
        bail!(
            "--upgrade: process {pid} of {} is `{theirs}`, not `{ours}`: start without --upgrade",
            pid_file.display()
        );
    }
    Ok(pid)
}

/// Tells `old` to hand over once this process listens on `socket`, and again every two
/// seconds until `handed_over`: a process still starting ignores the signal (see
/// `ignore_hand_over_until_running`). From a thread, since Pingora's bootstrap waits on
/// that socket.
pub fn ask_to_hand_over(old: Pid, socket: &Path, handed_over: Arc<AtomicBool>) -> anyhow::Result<()> {
    // A socket left by an earlier upgrade would be taken for this one's.
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the old upgrade socket {}", socket.display())),
    }
    let socket = socket.to_owned();
    std::thread::Builder::new()
        .name("poolgate-upgrade".into())
        .spawn(move || {
            let deadline = Instant::now() + HAND_OVER_WITHIN;
            while !socket.exists() {
                if Instant::now() > deadline {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            while !handed_over.load(Ordering::Acquire) && Instant::now() < deadline {
                match kill(old, Signal::SIGQUIT) {
                    Ok(()) => tracing::info!(code = "PG0002", old = old.as_raw(), "taking over from the running process"),
                    Err(e) => {
                        tracing::error!(code = "PG0003", old = old.as_raw(), error = %e, "cannot signal the running process");
                        return;
                    }
                }
                let asked = Instant::now();
                while !handed_over.load(Ordering::Acquire) && asked.elapsed() < Duration::from_secs(2) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })?;
    Ok(())
}

/// How long a new process waits for the old one's sockets before it gives up.
pub const HAND_OVER_WITHIN: Duration = Duration::from_secs(30);

/// Tells a service manager (systemd's `Type=notify`) that this process now serves and is
/// the service's main process: after an upgrade, the new process is.
fn notify_ready() {
    notify(&format!("READY=1\nMAINPID={}\n", std::process::id()));
}

/// Tells the service manager READY once every proxy listener accepts: Pingora binds them
/// in its own threads after the start is done, and a unit ordered after poolgate must not
/// find its port refusing connections. (Taken over in an upgrade, they accept at once.)
pub async fn notify_ready_once_accepting(listen: crate::config::Listen) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for addr in listen.local_addrs() {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if Instant::now() > deadline {
                tracing::error!(code = "PG0006", %addr, "the listener never accepted; the service manager was not told READY");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    notify_ready();
}

/// Tells a service manager this process is stopping.
pub fn notify_stopping() {
    notify("STOPPING=1\n");
}

/// One datagram to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
fn notify(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.to_string_lossy().into_owned();
    let addr = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&target),
    };
    let sent = UnixDatagram::unbound().and_then(|s| addr.and_then(|a| s.send_to_addr(state.as_bytes(), &a)));
    if let Err(e) = sent {
        tracing::warn!(code = "PG0006", socket = %target, error = %e, "cannot notify the service manager");
    }
}

/// Until Pingora runs and listens for it, `SIGQUIT` (whose default kills the process) is
/// ignored: a hand-over asked of a process still starting is asked again.
pub fn ignore_hand_over_until_running() {
    use nix::sys::signal::{SigHandler, signal};
    // SAFETY: replacing a default disposition with SIG_IGN installs no handler code.
    if let Err(e) = unsafe { signal(Signal::SIGQUIT, SigHandler::SigIgn) } {
        tracing::warn!(code = "PG0003", error = %e, "cannot ignore SIGQUIT while starting");
    }
}

/// Records this process as the running gateway (written whole, then renamed into place).
pub fn write_pid_file(pid_file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = pid_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = pid_file.with_extension("pid.new");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, pid_file))
        .with_context(|| format!("writing the pid file {}", pid_file.display()))
}

/// Why this process stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `SIGQUIT`: a new process takes over.
    HandOver,
    /// `SIGTERM`: the service stops.
    Terminate,
}

/// Resolves when this process is told to stop: handing over (`SIGQUIT`) or draining
/// (`SIGTERM`). Pingora sees the same signals and drains the proxy.
pub async fn stopping() -> Stop {
    let mut told = told().subscribe();
    loop {
        if let Some(stop) = *told.borrow_and_update() {
            return stop;
        }
        if told.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn told() -> &'static tokio::sync::watch::Sender<Option<Stop>> {
    static TOLD: std::sync::OnceLock<tokio::sync::watch::Sender<Option<Stop>>> = std::sync::OnceLock::new();
    TOLD.get_or_init(|| tokio::sync::watch::channel(None).0)
}

/// Listens for the stop signals once Pingora runs, and tells `stopping`. Not before: the
/// first handler installed for a signal replaces its default, so one taken here while
/// Pingora was still starting (an upgrade waits there for the sockets) would never reach
/// Pingora, and the process would stop half-way (admin closed, proxy serving).
pub async fn listen_for_stop(mut phases: Phases) {
    use tokio::signal::unix::{SignalKind, signal};
    if !reached(&mut phases, |p| matches!(p, ExecutionPhase::Running)).await {
        return;
    }
    let (Ok(mut quit), Ok(mut term)) = (signal(SignalKind::quit()), signal(SignalKind::terminate())) else {
        tracing::error!(
            code = "PG0003",
            "cannot listen for SIGQUIT and SIGTERM; stopping will not drain"
        );
        return;
    };
    let stop = tokio::select! {
        _ = quit.recv() => Stop::HandOver,
        _ = term.recv() => Stop::Terminate,
    };
    told().send_replace(Some(stop));
}

/// Waits until Pingora enters the phase `is` picks; false if it never will (it has ended).
async fn reached(phases: &mut Phases, is: impl Fn(&ExecutionPhase) -> bool) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match phases.recv().await {
            Ok(p) if is(&p) => return true,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return false,
        }
    }
}

/// Binds `addr` once the process it belonged to lets it go (within a minute).
pub async fn bind_when_free(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Once Pingora has stopped accepting (its grace period begun), exits as soon as no
/// request is in flight, rather than always waiting out the drain timeout.
pub async fn exit_when_drained(mut phases: Phases, drain: Arc<crate::proxy::Drain>) {
    if !reached(&mut phases, |p| matches!(p, ExecutionPhase::ShutdownGracePeriod)).await {
        return;
    }
    let mut idle_since: Option<Instant> = None;
    loop {
        if drain.in_flight.load(Ordering::Acquire) == 0 {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(200) {
                tracing::info!(code = "PG0005", "drained: nothing in flight, exiting");
                std::process::exit(0);
            }
        } else {
            idle_since = None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
