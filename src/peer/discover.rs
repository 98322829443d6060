//! Finding stores on the LAN: mDNS / DNS-SD service `_modelfs._tcp`.
//!
//! Owns [`Announcement`] (what `serve` publishes: its address and a TXT record with the store id
//! and the registry generation, refreshed when the registry changes) and [`browse`] (what
//! `peers` and `pull --from auto` see). Only the address is taken from the network; what a peer
//! holds is read from the peer itself, and every chunk it sends is verified like any other.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::error::{Error, Result};

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_modelfs._tcp.local.";

fn mdns_error(e: mdns_sd::Error) -> Error {
    Error::Remote {
        url: "mdns".into(),
        reason: format!("multicast DNS failed: {e}"),
    }
}

/// A store announced on the LAN while it is served.
pub struct Announcement {
    daemon: ServiceDaemon,
    listen: SocketAddr,
    store_id: String,
    fullname: String,
    generation: u64,
}

impl Announcement {
    /// Announces the store `store_id` at `registry generation`, served on `listen` (an unspecified
    /// address announces every interface's).
    pub fn new(listen: SocketAddr, store_id: &str, generation: u64) -> Result<Announcement> {
        let daemon = ServiceDaemon::new().map_err(mdns_error)?;
        let mut announcement = Announcement {
            daemon,
            listen,
            store_id: store_id.to_owned(),
            fullname: String::new(),
            generation,
        };
        announcement.register()?;
        Ok(announcement)
    }

    fn register(&mut self) -> Result<()> {
        let host = hostname();
        let instance = format!("{host}-{}-{}", &self.store_id[..8], self.listen.port());
        let generation = self.generation.to_string();
        let properties = [("id", self.store_id.as_str()), ("gen", generation.as_str())];
        let ip: Vec<IpAddr> = match self.listen.ip().is_unspecified() {
            true => Vec::new(),
            false => vec![self.listen.ip()],
        };
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &format!("{host}.local."),
            &ip[..],
            self.listen.port(),
            &properties[..],
        )
        .map_err(mdns_error)?;
        let info = match ip.is_empty() {
            true => info.enable_addr_auto(),
            false => info,
        };
        self.fullname = info.get_fullname().to_owned();
        self.daemon.register(info).map_err(mdns_error)
    }

    /// Re-announces with a new registry generation, so browsers see the store changed.
    pub fn set_generation(&mut self, generation: u64) -> Result<()> {
        if generation == self.generation {
            return Ok(());
        }
        self.generation = generation;
        self.register()
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(Duration::from_millis(500));
        }
        let _ = self.daemon.shutdown();
    }
}

/// A store found on the LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Where it is served, `http://IP:PORT`.
    pub url: String,
    /// Its store id, as announced.
    pub store_id: String,
    /// Its registry generation, as announced.
    pub generation: u64,
}

/// Listens for `wait` and returns the peers that answered, sorted by URL, one per store and
/// address (a peer with several addresses is listed once per address).
pub fn browse(wait: Duration) -> Result<Vec<Peer>> {
    let daemon = ServiceDaemon::new().map_err(mdns_error)?;
    let events = daemon.browse(SERVICE_TYPE).map_err(mdns_error)?;
    let deadline = Instant::now() + wait;
    let mut found = BTreeMap::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        if let ServiceEvent::ServiceResolved(service) = event {
            let store_id = service
                .get_property_val_str("id")
                .unwrap_or_default()
                .to_owned();
            let generation = service
                .get_property_val_str("gen")
                .and_then(|g| g.parse().ok())
                .unwrap_or(0);
            for ip in service.get_addresses_v4() {
                let url = format!("http://{ip}:{}", service.get_port());
                found.insert(
                    url.clone(),
                    Peer {
                        url,
                        store_id: store_id.clone(),
                        generation,
                    },
                );
            }
        }
    }
    let _ = daemon.shutdown();
    Ok(found.into_values().collect())
}

/// This machine's host name, for the announcement.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "modelfs".into())
}
