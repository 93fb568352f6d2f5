//! Policy: shows the daemon-wide policy, after changing it if asked. A
//! change is checked whole, saved, then put in force, and the lifecycle
//! owner schedules again at once: running transfers follow a new cap at
//! their next read, a blocking window stops background jobs.

use crate::access::Caller;
use crate::convert::rfc3339;
use crate::lifecycle::{Command, Handle};
use crate::state::{store_failed, Shared};
use crate::validate::bad;
use bits_core::policy::bandwidth::Cap;
use bits_core::policy::machine::MachinePolicy;
use bits_proto::{ApiError, ErrorKind, PolicyChange, PolicyObject, Response};
use std::sync::Arc;
use std::time::SystemTime;

/// One change at a time: each reads the policy, changes it and saves it.
static CHANGING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn handle(
    shared: &Arc<Shared>,
    manager: &Handle,
    change: Option<PolicyChange>,
    caller: &Caller,
) -> Result<Response, ApiError> {
    if let Some(change) = change {
        if !caller.admin {
            return Err(ApiError {
                kind: ErrorKind::Denied,
                message: "only root or the daemon's owner may change its policy".into(),
                code: None,
            });
        }
        let _one = CHANGING.lock().await;
        let policy = changed(shared.policy(), &change)?;
        let saved = policy.clone();
        shared
            .store
            .call(move |s| s.save_policy(&saved))
            .await
            .map_err(store_failed)?;
        tracing::info!(policy = ?policy, "policy changed");
        shared.set_policy(policy);
        manager.tell(Command::PolicyChanged);
    }
    Ok(Response::Policy {
        policy: Box::new(object(&shared.policy(), SystemTime::now())),
    })
}

/// `policy` with `change` applied, checked.
fn changed(mut policy: MachinePolicy, change: &PolicyChange) -> Result<MachinePolicy, ApiError> {
    if let Some(rate) = change.max_background_bandwidth {
        policy.max_background_bandwidth = (rate > 0).then_some(rate);
    }
    if let Some(text) = &change.bandwidth_schedule {
        let text = text.trim();
        policy.bandwidth_schedule =
            (!text.is_empty() && !text.eq_ignore_ascii_case("off")).then(|| text.to_string());
    }
    if let Some(n) = change.background_jobs {
        policy.background_jobs = n;
    }
    if let Some(n) = change.max_jobs_per_user {
        policy.max_jobs_per_user = n;
    }
    if let Some(n) = change.max_files_per_job {
        policy.max_files_per_job = n;
    }
    policy.check().map_err(bad)?;
    Ok(policy)
}

/// The policy as clients see it, with what it means at `now`.
pub fn object(policy: &MachinePolicy, now: SystemTime) -> PolicyObject {
    let (t, seconds) = crate::clock::week_time(now);
    let cap = policy.background_cap(t);
    PolicyObject {
        max_background_bandwidth: policy.max_background_bandwidth,
        bandwidth_schedule: policy.bandwidth_schedule.clone(),
        background_jobs: policy.background_jobs,
        max_jobs_per_user: policy.max_jobs_per_user,
        max_files_per_job: policy.max_files_per_job,
        background_bandwidth_now: match cap {
            Cap::Rate(r) => Some(r),
            Cap::Unlimited | Cap::Blocked => None,
        },
        background_blocked: cap == Cap::Blocked,
        next_schedule_change: policy.next_change(t, seconds).map(|d| rfc3339(now + d)),
    }
}
