//! Simulated WhatsApp users: their profile, business-scoped ids and the 24-hour customer-service
//! window each one has with each business number.

use std::collections::HashSet;
use std::sync::RwLock;

use wabridge_types::webhook::{Contact, Profile};

use crate::chaos::{hash_bytes, mix};
use crate::limits::ShardedMap;

/// What the sandbox knows of one user, per business number.
#[derive(Debug, Clone, Default)]
struct UserState {
    /// When the user last wrote to the number (sandbox clock, ns).
    last_inbound: Option<u64>,
    name: Option<String>,
    username: Option<String>,
}

/// The simulated users.
#[derive(Debug)]
pub(crate) struct Users {
    states: ShardedMap<UserState>,
    unreachable: RwLock<HashSet<String>>,
    initial_unreachable: Vec<String>,
    waba_key: u64,
}

/// The key of a (number, user) pair in per-pair maps.
pub(crate) fn pair_key(number_index: usize, wa_id: &str) -> u64 {
    mix(hash_bytes(wa_id.as_bytes()) ^ mix(number_index as u64 + 1))
}

impl Users {
    pub(crate) fn new(waba_id: &str, unreachable: &[String]) -> Self {
        Self {
            states: ShardedMap::default(),
            unreachable: RwLock::new(unreachable.iter().cloned().collect()),
            initial_unreachable: unreachable.to_vec(),
            waba_key: hash_bytes(waba_id.as_bytes()),
        }
    }

    /// Records an inbound message from `wa_id` at `now` (opens the window) and remembers the profile.
    pub(crate) fn record_inbound(
        &self,
        number_index: usize,
        wa_id: &str,
        now: u64,
        name: Option<&str>,
        username: Option<&str>,
    ) {
        let key = pair_key(number_index, wa_id);
        self.states.with(key, |map| {
            let state = map.entry(key).or_default();
            state.last_inbound = Some(now);
            if let Some(name) = name {
                state.name = Some(name.to_owned());
            }
            if let Some(username) = username {
                state.username = Some(username.to_owned());
            }
        });
    }

    /// Whether the customer-service window between the number and the user is open at `now`.
    pub(crate) fn window_open(&self, number_index: usize, wa_id: &str, now: u64, window_ns: u64) -> bool {
        let key = pair_key(number_index, wa_id);
        self.states.with(key, |map| {
            map.get(&key).and_then(|s| s.last_inbound).is_some_and(|at| now.saturating_sub(at) < window_ns)
        })
    }

    /// Whether messages to `wa_id` fail with 131026.
    pub(crate) fn is_unreachable(&self, wa_id: &str) -> bool {
        self.unreachable.read().map(|set| set.contains(wa_id)).unwrap_or(false)
    }

    /// Marks a user reachable or not.
    pub(crate) fn set_unreachable(&self, wa_id: &str, unreachable: bool) {
        if let Ok(mut set) = self.unreachable.write() {
            if unreachable {
                set.insert(wa_id.to_owned());
            } else {
                set.remove(wa_id);
            }
        }
    }

    /// The user's business-scoped user id (§8): stable for a WABA and a user, `CC.` plus digits.
    pub(crate) fn user_id(&self, wa_id: &str) -> String {
        let h = mix(self.waba_key ^ hash_bytes(wa_id.as_bytes()));
        format!("US.{}", 10_000_000_000_000_000_000u64.wrapping_add(h % 8_000_000_000_000_000_000))
    }

    /// The contact entry naming a user in webhooks; with business-scoped ids and username when
    /// `current_shape`.
    pub(crate) fn contact(&self, number_index: usize, wa_id: &str, current_shape: bool) -> Contact {
        let key = pair_key(number_index, wa_id);
        let (name, username) = self
            .states
            .with(key, |map| map.get(&key).map(|s| (s.name.clone(), s.username.clone())).unwrap_or_default());
        let name = name.unwrap_or_else(|| default_name(wa_id));
        let mut contact = Contact::new(wa_id, name);
        if current_shape {
            contact = contact.with_user_id(self.user_id(wa_id));
            if let Some(profile) = contact.profile.as_mut() {
                set_username(profile, username);
            }
        }
        contact
    }

    /// Forgets every user's window and profile; restores the configured unreachable users.
    pub(crate) fn reset(&self) {
        self.states.clear();
        if let Ok(mut set) = self.unreachable.write() {
            *set = self.initial_unreachable.iter().cloned().collect();
        }
    }
}

fn set_username(profile: &mut Profile, username: Option<String>) {
    profile.username = username;
}

/// A simulated user's profile name when none was given: "Sandbox User" and the last four digits.
fn default_name(wa_id: &str) -> String {
    let tail: String = wa_id.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    format!("Sandbox User {tail}")
}

/// The WhatsApp id for a recipient as given in `to`: digits only (a leading `+`, spaces, dashes,
/// dots and parentheses dropped). `None` when what remains is not a plausible phone number.
pub(crate) fn normalize_recipient(to: &str) -> Option<String> {
    let digits: String = to.chars().filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.')).collect();
    let plausible = (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    plausible.then_some(digits)
}
