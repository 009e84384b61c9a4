//! `mvdp docker-plugin`: Docker's remote network-driver protocol (JSON over
//! HTTP on a Unix socket, by default `/run/docker/plugins/mvdp.sock`, where
//! dockerd finds it as the driver `mvdp`), served on top of the node
//! daemon's control socket:
//!
//! ```text
//! docker network create -d mvdp --subnet 192.168.1.0/24 --gateway 192.168.1.1 -o parent=eth0 lan
//! docker run --network lan --ip 192.168.1.10 IMAGE
//! ```
//!
//! The plugin keeps no data plane of its own: it turns each call into
//! `network_add`, `endpoint_add`, ... requests ([`driver`]), and remembers
//! Docker's ids in a state file ([`store`]), because Docker does not repeat
//! `CreateNetwork` after a restart. The daemon keeps the networks and
//! endpoints across its own restarts.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod driver;
pub mod http;
pub mod store;

use driver::{Driver, Socket};

/// Where dockerd looks for the plugin.
pub const DEFAULT_LISTEN: &str = "/run/docker/plugins/mvdp.sock";
/// Where the plugin keeps Docker's ids.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/mvdp";
/// How long one call may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the plugin could not run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Another process serves the socket.
    #[error("{} is served by a running plugin; stop it first", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket could not be set up.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Where the plugin listens and what it talks to.
#[derive(Debug, Clone)]
pub struct PluginOptions {
    /// The plugin socket dockerd connects to.
    pub listen: PathBuf,
    /// The daemon's control socket.
    pub control: PathBuf,
    /// The directory of the plugin's state file.
    pub state_dir: PathBuf,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PluginError + 'a {
    move |source| PluginError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Binds the plugin socket: a socket file nobody answers on is stale and
/// replaced; one a live plugin answers on is refused.
fn bind(path: &Path) -> Result<UnixListener, PluginError> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(PluginError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io_err("remove the stale socket", path))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("create the directory of", path))?;
    }
    let listener = UnixListener::bind(path).map_err(io_err("listen on", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("set the mode of", path))?;
    Ok(listener)
}

/// How often endpoints whose sandbox vanished are looked for.
const REAP_EVERY: Duration = Duration::from_secs(5);

fn serve_connection(driver: &Mutex<Driver<Socket>>, stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let (status, body) = match http::read_request(&stream) {
        Ok(req) => {
            let answer = driver
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .handle(&req.path, &req.body);
            log::debug!("{} {} -> {answer}", req.method, req.path);
            (200, answer.to_string())
        }
        Err(e) => {
            log::warn!("a malformed request on the plugin socket: {e}");
            (400, serde_json::json!({ "Err": e.to_string() }).to_string())
        }
    };
    if let Err(e) = http::write_response(&stream, status, body.as_bytes()) {
        log::warn!("cannot answer dockerd: {e}");
    }
}

/// Serves the plugin until SIGTERM or SIGINT, then removes its socket.
pub fn serve(opts: &PluginOptions) -> Result<(), PluginError> {
    let signals = crate::control::signals::block_termination()
        .map_err(io_err("block the termination signals for", &opts.listen))?;
    let store = store::Store::open(&opts.state_dir)
        .map_err(io_err("read the plugin state in", &opts.state_dir))?;
    let known = (store.state.networks.len(), store.state.endpoints.len());
    let driver = Arc::new(Mutex::new(Driver::new(Socket(opts.control.clone()), store)));
    let listener = bind(&opts.listen)?;
    log::info!(
        "serving Docker's network-driver protocol on {} for the mvdp at {} ({} networks, {} endpoints remembered)",
        opts.listen.display(),
        opts.control.display(),
        known.0,
        known.1
    );
    let served = driver.clone();
    let listener_thread = std::thread::Builder::new()
        .name("mvdp-plugin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    // A bug in one call must not take the plugin down with it.
                    Ok(s) => {
                        let call = std::panic::AssertUnwindSafe(|| serve_connection(&served, s));
                        if std::panic::catch_unwind(call).is_err() {
                            log::error!("a call panicked; its connection is closed");
                        }
                    }
                    Err(e) => log::warn!("accept on the plugin socket: {e}"),
                }
            }
        })
        .map_err(io_err("start the listener for", &opts.listen))?;
    let mut last_reap = std::time::Instant::now();
    loop {
        if listener_thread.is_finished() {
            log::error!("the plugin's listener stopped");
            break;
        }
        if last_reap.elapsed() >= REAP_EVERY {
            driver.lock().unwrap_or_else(|p| p.into_inner()).reap();
            last_reap = std::time::Instant::now();
        }
        match signals.wait(Duration::from_secs(1)) {
            Ok(Some("SIGHUP")) | Ok(None) => {}
            Ok(Some(sig)) => {
                log::info!("{sig}: stopping");
                break;
            }
            Err(e) => {
                log::error!("waiting for signals: {e}");
                break;
            }
        }
    }
    // A call in progress finishes (and saves) before the plugin goes.
    let _done = driver.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::remove_file(&opts.listen).map_err(io_err("remove", &opts.listen))?;
    Ok(())
}
