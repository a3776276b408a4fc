//! `events.add_batch`: json-lines batches of events, split into packets under a size limit.
//! Unversioned POST with `Content-Type: application/json-lines`, as the Python agent sends it.

use serde::{Deserialize, Serialize};

use super::client::Client;
use super::error::Error;
use super::types::{LogEvent, nullable};

/// Longest `msg` of one log event, in characters; longer ones are split with the timestamp
/// advanced by 1 ms per part (mirrors clearml_agent/commands/events.py:
/// Events.send_log_events_with_timestamps, max_event_size).
pub const MAX_EVENT_MSG_CHARS: usize = 64 * 1024;

/// Calls of the `events` service.
pub struct Events<'a> {
    client: &'a Client,
}

/// The summed replies of the packets of one batch.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BatchResult {
    #[serde(deserialize_with = "nullable")]
    pub added: u64,
    #[serde(deserialize_with = "nullable")]
    pub errors: u64,
    /// Number of packets (requests) sent.
    #[serde(skip)]
    pub packets: usize,
}

impl Client {
    /// The `events` calls.
    pub fn events(&self) -> Events<'_> {
        Events { client: self }
    }
}

impl Events<'_> {
    /// Sends events as json-lines packets of at most `max_batch_bytes` each (a single larger
    /// event goes alone). Stops at the first failed packet and returns its error.
    // mirrors clearml_agent/commands/events.py: Events.send_events
    pub async fn add_batch<E: Serialize>(&self, events: &[E]) -> Result<BatchResult, Error> {
        let limit = self.client.config().max_batch_bytes;
        let mut total = BatchResult::default();
        let mut packet: Vec<u8> = Vec::new();
        for event in events {
            let line = serde_json::to_vec(event).map_err(|e| {
                Error::Config(format!("cannot encode an event for events.add_batch: {e}"))
            })?;
            let extra = line.len() + usize::from(!packet.is_empty());
            if !packet.is_empty() && packet.len() + extra > limit {
                self.send_packet(std::mem::take(&mut packet), &mut total)
                    .await?;
            }
            if !packet.is_empty() {
                packet.push(b'\n');
            }
            packet.extend_from_slice(&line);
        }
        if !packet.is_empty() {
            self.send_packet(packet, &mut total).await?;
        }
        Ok(total)
    }

    /// Sends log events, splitting messages longer than [`MAX_EVENT_MSG_CHARS`].
    pub async fn add_log_events(&self, events: &[LogEvent]) -> Result<BatchResult, Error> {
        let mut split: Vec<LogEvent> = Vec::with_capacity(events.len());
        for event in events {
            if event.msg.chars().count() <= MAX_EVENT_MSG_CHARS {
                split.push(event.clone());
                continue;
            }
            let chars: Vec<char> = event.msg.chars().collect();
            for (n, part) in chars.chunks(MAX_EVENT_MSG_CHARS).enumerate() {
                split.push(LogEvent {
                    msg: part.iter().collect(),
                    timestamp: event.timestamp + n as i64,
                    ..event.clone()
                });
            }
        }
        self.add_batch(&split).await
    }

    async fn send_packet(&self, body: Vec<u8>, total: &mut BatchResult) -> Result<(), Error> {
        let reply: BatchResult = self
            .client
            .call_batch("events.add_batch", None, body)
            .await?;
        total.added += reply.added;
        total.errors += reply.errors;
        total.packets += 1;
        Ok(())
    }
}
