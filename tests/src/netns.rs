//! Network namespaces for coordinators, so that a test can cut one off every other node
//! while its clients still reach it. Each coordinator runs in a namespace of its own with two
//! links: one to a bridge that carries every internal call (the other coordinators, and the
//! workers, which stay in the test's namespace on the bridge's own address), and one to the
//! test alone, for its clients. Cutting a coordinator takes its bridge link down: its Raft
//! and query traffic, in and out, goes nowhere, as in a real partition.

use std::collections::BTreeMap;
use std::process::Command;

/// The bridge, and a namespace per coordinator; all removed when dropped.
pub struct Network {
    tag: u8,
    namespaces: BTreeMap<u64, String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Network {
    /// A new bridge with its own subnet. Fails (with why) where namespaces cannot be made:
    /// the test needs root or CAP_NET_ADMIN and iproute2.
    pub fn new() -> Result<Network, String> {
        let first = (std::process::id() % 200) as u8;
        let mut last_error = String::new();
        for offset in 0..50u8 {
            let tag = (first + offset) % 200;
            match ip(&["link", "add", &format!("shb{tag}"), "type", "bridge"]) {
                Ok(()) => {
                    let network = Network {
                        tag,
                        namespaces: BTreeMap::new(),
                    };
                    ip(&[
                        "addr",
                        "add",
                        &format!("{}/24", network.host_ip()),
                        "dev",
                        &network.bridge(),
                    ])?;
                    ip(&["link", "set", &network.bridge(), "up"])?;
                    return Ok(network);
                }
                Err(e) => last_error = e,
            }
        }
        Err(format!(
            "cannot make a bridge for the test's network namespaces: {last_error}"
        ))
    }

    fn bridge(&self) -> String {
        format!("shb{}", self.tag)
    }

    /// The test's (and the workers') address on the bridge.
    pub fn host_ip(&self) -> String {
        format!("10.77.{}.1", self.tag)
    }

    /// Coordinator `id`'s address for internal calls.
    pub fn internal_ip(&self, id: u64) -> String {
        format!("10.77.{}.{}", self.tag, 10 + id)
    }

    /// Coordinator `id`'s address for its clients (the test).
    pub fn client_ip(&self, id: u64) -> String {
        format!("10.78.{}.{}", self.tag, 4 * id + 2)
    }

    /// The namespace of coordinator `id`, made with its links on first use.
    pub fn namespace(&mut self, id: u64) -> Result<String, String> {
        assert!((1..=60).contains(&id), "coordinator ids 1 to 60 only");
        if let Some(ns) = self.namespaces.get(&id) {
            return Ok(ns.clone());
        }
        let tag = self.tag;
        let ns = format!("shoal{tag}c{id}");
        ip(&["netns", "add", &ns])?;
        self.namespaces.insert(id, ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        // The bridge link.
        let (outside, inside) = (format!("shv{tag}x{id}"), format!("shw{tag}x{id}"));
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &ns])?;
        ip(&["link", "set", &outside, "master", &self.bridge()])?;
        ip(&["link", "set", &outside, "up"])?;
        let internal = format!("{}/24", self.internal_ip(id));
        ip(&["-n", &ns, "addr", "add", &internal, "dev", &inside])?;
        ip(&["-n", &ns, "link", "set", &inside, "up"])?;
        // The clients' link.
        let (outside, inside) = (format!("shk{tag}x{id}"), format!("shl{tag}x{id}"));
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &ns])?;
        let host_end = format!("10.78.{tag}.{}/30", 4 * id + 1);
        ip(&["addr", "add", &host_end, "dev", &outside])?;
        ip(&["link", "set", &outside, "up"])?;
        let client = format!("{}/30", self.client_ip(id));
        ip(&["-n", &ns, "addr", "add", &client, "dev", &inside])?;
        ip(&["-n", &ns, "link", "set", &inside, "up"])?;
        Ok(ns)
    }

    /// Cut coordinator `id` off the bridge (`cut`), or link it again.
    pub fn cut(&self, id: u64, cut: bool) -> Result<(), String> {
        let link = format!("shv{}x{id}", self.tag);
        ip(&["link", "set", &link, if cut { "down" } else { "up" }])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its ends of the links, and with them the other ends.
        for ns in self.namespaces.values() {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}
