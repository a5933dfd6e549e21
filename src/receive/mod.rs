//! The wire: OTLP over gRPC and HTTP, and hook events over HTTP. Receivers
//! decode (hooks: check), validate, and hand an [`Input`] to the merge engine
//! through [`Ingest`], a bounded channel that also bounds buffered bytes.
//! When it is full, OTLP and the command hook get 503 / UNAVAILABLE and send
//! again later, and an HTTP hook, which Claude Code does not resend, waits a
//! bounded time for room first; memory never grows without bound.

pub mod auth;
pub mod decode;
pub mod grpc;
pub mod http;
pub mod signal;
pub mod tls;
pub mod validate;

use crate::model::hook::HookParseError;
use crate::model::{Event, HookEvent, Payload, Transport};
use crate::telemetry::Stats;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// What a receiver hands to the merge engine.
#[derive(Debug)]
pub enum Input {
    /// A decoded OTLP request (or any ready event).
    Event(Event),
    /// A hook body that passed [`HookEvent::check`]: Claude Code gets its
    /// answer before the body is parsed, which the merge thread does.
    Hook {
        body: Bytes,
        transport: Transport,
        received_at: u64,
    },
}

impl From<Event> for Input {
    fn from(event: Event) -> Input {
        Input::Event(event)
    }
}

/// An accepted input and its share of the byte budget, released when the
/// merge engine takes it.
#[derive(Debug)]
pub struct Accepted {
    input: Input,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Accepted {
    /// An event that holds no byte budget (for replays from the store).
    pub fn unbudgeted(event: Event) -> Accepted {
        Accepted {
            input: Input::Event(event),
            _permit: None,
        }
    }

    /// The event, parsing a hook's body. A body that passed the check
    /// always parses; the error is there for the impossible case.
    pub fn into_event(self) -> Result<Event, HookParseError> {
        match self.input {
            Input::Event(e) => Ok(e),
            Input::Hook {
                body,
                transport,
                received_at,
            } => {
                let hook = HookEvent::parse(&body)?;
                Ok(Event {
                    received_at,
                    transport,
                    payload: Payload::Hook(hook),
                    wire: Some(body),
                })
            }
        }
    }
}

/// Bytes of memory a decoded OTLP request holds per byte of its protobuf
/// encoding: prost's strings, vectors and attribute values, with the
/// allocator's overhead. Measured on Claude Code's own requests: 2.7 for
/// log records, 4.6 for spans, 5.0 for metrics.
pub const DECODED_PER_ENCODED_BYTE: usize = 5;

/// What a queued OTLP request counts against the byte budget: the decoded
/// request, estimated from its protobuf size, and the `kept` bytes queued
/// with it. Counting only the wire bytes let a full buffer hold several
/// times its bound in memory, and the heap that backlog passed through
/// stayed fragmented after it drained.
pub fn held_bytes(encoded: usize, kept: usize) -> usize {
    encoded
        .saturating_mul(DECODED_PER_ENCODED_BYTE)
        .saturating_add(kept)
}

/// The sending side of the one internal channel, shared by all receivers.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Accepted>,
    budget: Budget,
    /// The room the last input asked for, queued or not: a guess at the
    /// next one's, for a receiver that must decide before it has the input
    /// (gRPC).
    last_size: Arc<AtomicUsize>,
    activity: Activity,
    /// How long a hook event may wait for room before it is refused.
    hook_wait: std::time::Duration,
    pub stats: Arc<Stats>,
}

/// What the merge can see of the receivers: when they last queued an
/// input, and how much of the byte budget is held. With one CPU for both,
/// a merge that takes the CPU in the middle of a burst of hooks holds it
/// until the kernel's next tick (4 ms at 250 Hz) while the receiver, still
/// runnable, waits with its replies; so the merge stays out of a burst
/// while it has room to catch up afterwards.
#[derive(Clone, Debug)]
pub struct Activity {
    /// Nanoseconds since [`epoch`] of the last queued input; 0 for none.
    last_queued: Arc<AtomicU64>,
    /// The receivers' own budget (the same permits), to see how full it is.
    budget: Budget,
}

/// The memory queued inputs may hold, as permits of one byte each: taken
/// by the receivers, given back as the merge takes each input.
#[derive(Clone, Debug)]
struct Budget {
    permits: Arc<Semaphore>,
    size: usize,
}

impl Budget {
    fn new(bytes: usize) -> Budget {
        let size = bytes.clamp(1, u32::MAX as usize);
        Budget {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    fn free(&self) -> usize {
        self.permits.available_permits()
    }

    fn more_than_half_free(&self) -> bool {
        self.free() > self.size / 2
    }

    fn try_take(&self, bytes: u32) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_many_owned(bytes).ok()
    }

    /// Waits for `bytes` of room; none once the budget is closed.
    async fn take(&self, bytes: u32) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_many_owned(bytes).await.ok()
    }
}

/// The process's monotonic origin for [`Activity`] times.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Activity {
    fn queued(&self) {
        // +1 so that an input queued at the epoch still counts.
        let at = epoch().elapsed().as_nanos() as u64 + 1;
        self.last_queued.store(at, Ordering::Relaxed);
    }

    /// Whether the receivers queued an input within `quiet` while less
    /// than half the byte budget is held: the merge may then leave them
    /// the CPU for a moment and still catch up. Past half full it never
    /// waits, so a sustained load is merged as fast as before.
    pub fn in_burst(&self, quiet: Duration) -> bool {
        let last = self.last_queued.load(Ordering::Relaxed);
        let now = epoch().elapsed().as_nanos() as u64 + 1;
        last != 0
            && now.saturating_sub(last) < quiet.as_nanos() as u64
            && self.budget.more_than_half_free()
    }
}

/// A share of the byte budget, taken before the input it is for exists.
#[derive(Debug)]
pub struct Room(OwnedSemaphorePermit);

/// The channel or the byte budget is full.
#[derive(Debug, thiserror::Error)]
#[error("ccotel is overloaded: its internal queue is full; retry later")]
pub struct Full;

impl Ingest {
    /// Creates the channel: at most `events` queued events holding at most
    /// `bytes` of memory (see [`held_bytes`]; a hook's body is held as is).
    pub fn channel(
        events: usize,
        bytes: usize,
        stats: Arc<Stats>,
    ) -> (Ingest, mpsc::Receiver<Accepted>) {
        let (tx, rx) = mpsc::channel(events.max(1));
        let budget = Budget::new(bytes);
        (
            Ingest {
                tx,
                activity: Activity {
                    last_queued: Arc::new(AtomicU64::new(0)),
                    budget: budget.clone(),
                },
                budget,
                last_size: Arc::new(AtomicUsize::new(0)),
                hook_wait: std::time::Duration::ZERO,
                stats,
            },
            rx,
        )
    }

    /// What the merge watches to stay out of the receivers' way.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// Lets hook events wait up to `wait` for room when the channel is full.
    pub fn with_hook_wait(mut self, wait: std::time::Duration) -> Ingest {
        self.hook_wait = wait;
        self
    }

    /// Queues an input without waiting; `size` is the memory it holds.
    pub fn submit(&self, input: impl Into<Input>, size: usize) -> Result<(), Full> {
        self.submit_in(self.room(size)?, input)
    }

    /// Takes room for an input of `size` bytes before it is decoded, so
    /// that under overload a refused request costs its read and no more:
    /// decoding requests only to refuse them took the CPU the merge needed
    /// to make room, and fewer were accepted.
    pub fn room(&self, size: usize) -> Result<Room, Full> {
        match self.budget.try_take(self.want(size)) {
            Some(permit) => Ok(Room(permit)),
            None => Err(self.refused()),
        }
    }

    /// [`Ingest::room`] for a receiver that must decide before it knows
    /// the input's size (tonic decodes a gRPC request before ccotel sees
    /// it): refuses when less room is left than the last input asked for.
    pub fn expect_room(&self) -> Result<(), Full> {
        let last = self.last_size.load(Ordering::Relaxed);
        if self.budget.free() >= last.max(1) {
            Ok(())
        } else {
            Err(self.refused())
        }
    }

    /// Queues an input in room taken by [`Ingest::room`], without waiting.
    pub fn submit_in(&self, room: Room, input: impl Into<Input>) -> Result<(), Full> {
        self.tx
            .try_send(Accepted {
                input: input.into(),
                _permit: Some(room.0),
            })
            .map_err(|_| self.refused())?;
        self.activity.queued();
        Ok(())
    }

    /// Queues an HTTP hook's event, waiting up to the hook wait for room
    /// when the channel is full. Claude Code never retries a refused HTTP
    /// hook, so a short delay under a burst is better than a lost event;
    /// OTLP senders retry and the command hook spools, so they use
    /// [`Ingest::submit`] and get a 503 at once.
    pub async fn submit_hook(&self, input: impl Into<Input>, size: usize) -> Result<(), Full> {
        let want = self.want(size);
        let input = match self.try_queue(input.into(), want) {
            None => return Ok(()),
            Some(_) if self.tx.is_closed() => return Err(self.refused()),
            Some(input) => input,
        };
        self.stats.inc(&self.stats.waited_full);
        let wait = async {
            let permit = self.budget.take(want).await?;
            let slot = self.tx.reserve().await.ok()?;
            Some((permit, slot))
        };
        match tokio::time::timeout(self.hook_wait, wait).await {
            Ok(Some((permit, slot))) => {
                slot.send(Accepted {
                    input,
                    _permit: Some(permit),
                });
                self.activity.queued();
                Ok(())
            }
            _ => Err(self.refused()),
        }
    }

    /// Queues at once if the byte budget and the channel both have room;
    /// otherwise hands the input back.
    fn try_queue(&self, input: Input, want: u32) -> Option<Input> {
        let Some(permit) = self.budget.try_take(want) else {
            return Some(input);
        };
        let back = self
            .tx
            .try_send(Accepted {
                input,
                _permit: Some(permit),
            })
            .err()
            .map(|e| e.into_inner().input);
        if back.is_none() {
            self.activity.queued();
        }
        back
    }

    fn refused(&self) -> Full {
        self.stats.inc(&self.stats.refused_full);
        Full
    }

    fn want(&self, size: usize) -> u32 {
        let want = size.clamp(1, self.budget.size);
        self.last_size.store(want, Ordering::Relaxed);
        want as u32
    }
}
