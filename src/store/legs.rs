//! The dialog state of every outbound SIP leg that may still be up or ringing, so a restart can
//! end it (BYE, CANCEL) instead of leaving the carrier to bill it until its own timers fire.
//!
//! Written from the SIP layer's view of the wire (INVITE sent, ACK sent, leg gone) in batches;
//! read once at start-up by recovery.

use super::{Store, StoreError, now_ms};
use crate::core::{LegDialog, LegDialogState, Transport};
use rusqlite::{Connection, params};

/// One change to the journal of leg dialogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegJournalOp {
    /// The leg is cancellable or established (insert or replace its state).
    Save(LegDialog),
    /// The leg is gone (by Call-ID).
    Forget(String),
}

impl Store {
    /// Applies a batch of journal changes in one transaction, in order.
    pub async fn apply_leg_journal(&self, ops: Vec<LegJournalOp>) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.apply_leg_journal(ops).await;
        }
        self.with(move |conn| {
            let tx = conn.savepoint()?;
            for op in &ops {
                apply_op(&tx, op)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Every leg dialog left in the journal (oldest first).
    pub async fn leg_dialogs(&self) -> Result<Vec<LegDialog>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.leg_dialogs().await;
        }
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT call_id, conversation_id, state, local_tag, remote_tag, cseq,
                        remote_target, route_set, transport, destination, local_contact, request
                   FROM leg_dialogs ORDER BY updated_at",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    LegDialog {
                        call_id: r.get(0)?,
                        conversation_id: r.get(1)?,
                        state: LegDialogState::Calling,
                        local_tag: r.get(3)?,
                        remote_tag: r.get(4)?,
                        cseq: r.get(5)?,
                        remote_target: r.get(6)?,
                        route_set: Vec::new(),
                        transport: Transport::Udp,
                        destination: r.get(9)?,
                        local_contact: r.get(10)?,
                        request: r.get(11)?,
                    },
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut d, state, routes, transport) = row?;
                // A row this version cannot read is skipped (logged), not fatal to start-up.
                let Some(state) = LegDialogState::parse(&state) else {
                    tracing::warn!(call_id = %d.call_id, %state, "unknown leg state in the store");
                    continue;
                };
                d.state = state;
                d.route_set = serde_json::from_str(&routes)?;
                d.transport = match transport.as_str() {
                    "tcp" => Transport::Tcp,
                    "tls" => Transport::Tls,
                    _ => Transport::Udp,
                };
                out.push(d);
            }
            Ok(out)
        })
        .await
    }
}

fn apply_op(conn: &Connection, op: &LegJournalOp) -> Result<(), StoreError> {
    match op {
        LegJournalOp::Save(d) => {
            conn.execute(
                "INSERT INTO leg_dialogs (call_id, conversation_id, state, local_tag, remote_tag,
                    cseq, remote_target, route_set, transport, destination, local_contact, request,
                    updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT(call_id) DO UPDATE SET
                    state=excluded.state, local_tag=excluded.local_tag,
                    remote_tag=excluded.remote_tag, cseq=excluded.cseq,
                    remote_target=excluded.remote_target, route_set=excluded.route_set,
                    transport=excluded.transport, destination=excluded.destination,
                    local_contact=COALESCE(excluded.local_contact, leg_dialogs.local_contact),
                    request=excluded.request, updated_at=excluded.updated_at",
                params![
                    d.call_id,
                    d.conversation_id,
                    d.state.as_str(),
                    d.local_tag,
                    d.remote_tag,
                    d.cseq,
                    d.remote_target,
                    serde_json::to_string(&d.route_set)?,
                    d.transport.as_str(),
                    d.destination,
                    d.local_contact,
                    d.request,
                    now_ms(),
                ],
            )?;
        }
        LegJournalOp::Forget(call_id) => {
            conn.execute("DELETE FROM leg_dialogs WHERE call_id=?1", [call_id])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(call_id: &str, state: LegDialogState) -> LegDialog {
        LegDialog {
            call_id: call_id.into(),
            conversation_id: "conv-1".into(),
            state,
            local_tag: "lt".into(),
            remote_tag: (state == LegDialogState::Up).then(|| "rt".into()),
            cseq: 1,
            remote_target: "sip:+1555@127.0.0.1:5090".into(),
            route_set: vec!["<sip:127.0.0.1:5070;lr>".into()],
            transport: Transport::Tcp,
            destination: "127.0.0.1:5070".into(),
            local_contact: (state == LegDialogState::Calling)
                .then(|| "<sip:dialgate@127.0.0.1:5060>".into()),
            request: "INVITE sip:+1555@127.0.0.1:5090 SIP/2.0\r\n\r\n".into(),
        }
    }

    #[tokio::test]
    async fn a_leg_is_kept_from_invite_to_answer_and_forgotten_when_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store opens");
        // 1. INVITE sent: the leg is cancellable.
        let calling = leg("a@x", LegDialogState::Calling);
        store
            .apply_leg_journal(vec![LegJournalOp::Save(calling.clone())])
            .await
            .expect("saved");
        assert_eq!(store.leg_dialogs().await.expect("read"), vec![calling]);
        // 2. ACK sent: the leg is up; the INVITE's Contact is kept.
        let up = leg("a@x", LegDialogState::Up);
        store
            .apply_leg_journal(vec![
                LegJournalOp::Save(up.clone()),
                LegJournalOp::Save(leg("b@x", LegDialogState::Calling)),
            ])
            .await
            .expect("saved");
        let legs = store.leg_dialogs().await.expect("read");
        assert_eq!(legs.len(), 2);
        assert_eq!(legs[0].state, LegDialogState::Up);
        assert_eq!(legs[0].remote_tag.as_deref(), Some("rt"));
        assert_eq!(
            legs[0].local_contact.as_deref(),
            Some("<sip:dialgate@127.0.0.1:5060>")
        );
        assert_eq!(legs[0].transport, Transport::Tcp);
        assert_eq!(legs[0].route_set, up.route_set);
        // 3. Both legs end: nothing is left for recovery.
        store
            .apply_leg_journal(vec![
                LegJournalOp::Forget("a@x".into()),
                LegJournalOp::Forget("b@x".into()),
            ])
            .await
            .expect("forgotten");
        assert!(store.leg_dialogs().await.expect("read").is_empty());
    }
}
