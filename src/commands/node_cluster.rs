//! `clusterops node` under `CLUSTER_MODE`: the supervisor that runs the
//! host's node processes (this same binary, `node --process i/N`), and what
//! such a process watches to stop when its supervisor is gone.

use super::node::{NodeArgs, shutdown_signal};
use clusterops::node::runtime;
use clusterops::node::supervisor::{self, SupervisorOptions};
use color_eyre::eyre::Result;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

/// Run `count` node processes sharing `--listen` until SIGTERM/SIGINT.
/// Exit 0 after a clean stop, 1 when a process keeps dying, 2 on a wrong
/// option.
pub async fn supervise(args: &NodeArgs, count: u16, verbose: u8) -> Result<i32> {
    let shared = args.listen;
    if shared.port() == 0 {
        eprintln!(
            "error: CLUSTER_MODE: --listen {shared} needs a fixed port: the {count} processes all listen on it"
        );
        return Ok(2);
    }
    let base = args
        .process_port_base
        .unwrap_or_else(|| shared.port().saturating_add(1));
    let last = u32::from(base) + u32::from(count) - 1;
    if base != 0
        && (last > u32::from(u16::MAX)
            || (u32::from(base)..=last).contains(&u32::from(shared.port())))
    {
        eprintln!(
            "error: --process-port-base {base}: the {count} processes' own ports {base}..={last} must be \
             valid ports other than --listen's {}",
            shared.port()
        );
        return Ok(2);
    }
    let base_id = args
        .node_id
        .clone()
        .unwrap_or_else(runtime::generated_node_id);
    let names: Vec<String> = (0..count).map(|i| format!("{base_id}-{i}")).collect();
    if let Some(Err(e)) = names
        .iter()
        .map(|id| runtime::validate_node_id(id))
        .find(Result::is_err)
    {
        eprintln!("error: {e} (CLUSTER_MODE adds -INDEX to --node-id)");
        return Ok(2);
    }
    let program = std::env::current_exe()?;
    let child_args = ChildArgs {
        env_file: args.env.env_file.clone().map(OsString::from),
        shared,
        base,
        names: names.clone(),
        app_version: args.app_version.clone(),
        heartbeat_ms: args.heartbeat_ms,
        lease_ttl_ms: args.lease_ttl_ms,
        drain_timeout: args.drain_timeout,
        count,
        verbose,
    };
    let mut opts = SupervisorOptions::new(program, names, Box::new(move |i| child_args.of(i)));
    opts.stop_timeout = Duration::from_secs(args.drain_timeout.saturating_add(20));
    tracing::info!(
        processes = count,
        shared = %shared,
        own_ports = %if base == 0 { "any free".to_string() } else { format!("{base}..={last}") },
        "CLUSTER_MODE: starting the node processes"
    );
    match supervisor::run(opts, shutdown_signal()).await {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(1)
        }
    }
}

/// What every process is started with.
struct ChildArgs {
    env_file: Option<OsString>,
    shared: SocketAddr,
    base: u16,
    names: Vec<String>,
    app_version: String,
    heartbeat_ms: u64,
    lease_ttl_ms: u64,
    drain_timeout: u64,
    count: u16,
    verbose: u8,
}

impl ChildArgs {
    fn of(&self, index: u16) -> Vec<OsString> {
        let port = if self.base == 0 {
            0
        } else {
            self.base.saturating_add(index)
        };
        let own = SocketAddr::new(self.shared.ip(), port);
        let name = self
            .names
            .get(usize::from(index))
            .cloned()
            .unwrap_or_default();
        let mut out: Vec<OsString> = (0..self.verbose.min(2)).map(|_| "-v".into()).collect();
        out.push("node".into());
        if let Some(f) = &self.env_file {
            out.push("--env-file".into());
            out.push(f.clone());
        }
        for (flag, value) in [
            ("--listen", own.to_string()),
            ("--node-id", name),
            ("--app-version", self.app_version.clone()),
            ("--heartbeat-ms", self.heartbeat_ms.to_string()),
            ("--lease-ttl-ms", self.lease_ttl_ms.to_string()),
            ("--drain-timeout", self.drain_timeout.to_string()),
            ("--shared-listen", self.shared.to_string()),
            ("--process", format!("{index}/{}", self.count)),
        ] {
            out.push(flag.into());
            out.push(value.into());
        }
        out
    }
}

/// Resolves when the process that started this one is gone (the
/// supervisor was killed): the node then stops as on SIGTERM rather than
/// run on unsupervised.
pub async fn supervisor_gone() {
    let parent = nix::unistd::getppid();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if nix::unistd::getppid() != parent {
            tracing::warn!(
                supervisor = parent.as_raw(),
                "the CLUSTER_MODE supervisor is gone: stopping"
            );
            return;
        }
    }
}
