//! Moving slots between shards through the cutover protocol, led by the meta leader.
//!
//! Contract (`POST /slots/move {"slots": "0-63,100", "to", "force"?}`; any node forwards to
//! the leader):
//! 1. prepare: commit `freeze_slots` (refused, unless `force`, while the slots hold rows on
//!    their current shards: there is no online data migration). Every node holds new work on
//!    those slots, drains the work routed before the prepare on their source shards (aborting
//!    what outlives `node.drain_timeout_ms` with a retryable error) and acknowledges;
//! 2. the leader waits for every node with a live lease (within `meta.cutover_budget_ms`);
//! 3. commit `assign_slots`: nodes re-route the held work to the new owner.
//!
//! A prepare not acknowledged in time is rolled back (`unfreeze_slots`): held work resumes on
//! the old owner. Statements on other slots are never held.

use super::switchover::{Active, Switchover};
use serde::{Deserialize, Serialize};
use slotgate_shared::api::CommandRequest;
use slotgate_shared::{SlotRange, TopologyCommand};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveRequest {
    /// Slots as `slotctl` writes them: `"0-63,100"`.
    pub slots: String,
    pub to: String,
    /// Skip the check that the slots hold no rows.
    #[serde(default)]
    pub force: bool,
    /// Idempotency key: a retry with the same key never starts a second move.
    #[serde(default)]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveReply {
    pub slots: String,
    pub to: String,
    /// Topology version that made the new owner live.
    pub version: u64,
    /// Milliseconds from the prepare's commit to the move's commit (the pause on those slots).
    pub frozen_ms: u64,
}

impl Switchover {
    /// Moves the slots (this node must be the meta leader).
    pub async fn move_slots(&self, req: &MoveRequest) -> Result<MoveReply, String> {
        let _active = Active::new(&self.active);
        let slots = SlotRange::parse_list(&req.slots)?;
        let (to, list) = (req.to.clone(), SlotRange::format_list(&slots));
        let deadline = Instant::now() + self.meta.cutover_budget();
        let key = req.request_id.as_deref();
        let prepare = CommandRequest {
            request_id: super::idempotent::step_id(key, "prepare"),
            actor: Some(format!("slot move (node {})", self.meta.id())),
            if_version: None,
            force: req.force,
            command: TopologyCommand::FreezeSlots { slots: slots.clone(), to: to.clone() },
        };
        let prepared = self.meta.submit(prepare).await.map_err(|e| e.to_string())?.version;
        let frozen_at = Instant::now();
        let acked = self.meta.wait_acks(prepared, deadline).await;
        let committed = match acked {
            Ok(()) => self.submit_as(TopologyCommand::AssignSlots { slots: slots.clone(), to: to.clone() }, super::idempotent::step_id(key, "commit")).await,
            Err(e) => Err(e),
        };
        match committed {
            Ok(version) => {
                self.metrics.cutover().cutover("slot_move", "committed");
                Ok(MoveReply { slots: list, to, version, frozen_ms: frozen_at.elapsed().as_millis() as u64 })
            }
            Err(e) => {
                tracing::warn!(slots = %list, to = %to, error = %e, "slot move rolled back");
                self.metrics.cutover().cutover("slot_move", "rolled_back");
                let undo = self.submit(TopologyCommand::UnfreezeSlots { slots, to: to.clone() }).await;
                Err(match undo {
                    Ok(_) => format!("moving slots {list} to shard {to:?} rolled back, they stay where they were: {e}"),
                    Err(u) => format!("moving slots {list} to shard {to:?} failed ({e}) and its rollback too ({u}); check `slotctl status` and retry"),
                })
            }
        }
    }
}
