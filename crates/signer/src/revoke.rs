//! Taking links back before they expire: [`Revocations`], a set of rules
//! checked against every granted link, and its file form.
//!
//! Three kinds of rule:
//! - a user's links issued before a time (`revoke --user 42`: every link
//!   handed out so far, with no bookkeeping in the app);
//! - a user's links whose generation is below a number (the app keeps a
//!   counter with the user, signs it into new links with
//!   [`LinkBuilder::generation`](crate::LinkBuilder::generation), and bumps
//!   it; a link without a generation counts as generation 0);
//! - one link, by its [`LinkId`].
//!
//! Each rule carries the time after which no link it could refuse can
//! still be valid (`until`), and drops out then ([`Revocations::prune`]),
//! so the set stays small.
//!
//! ```
//! use mediagate_signer::revoke::{Revocations, Revoked};
//! use mediagate_signer::time::{Duration, OffsetDateTime};
//! use mediagate_signer::{Key, Keyring, MediaPath, Method, RequestFacts, Signer, Verifier};
//!
//! let keyring = Keyring::new(Key::generate("k1")?);
//! let signer = Signer::new(keyring.clone());
//! let link = signer
//!     .link("42", "/a.mp4")
//!     .ttl(Duration::minutes(5))
//!     .sign()?;
//! let path = MediaPath::parse("/a.mp4")?;
//! let now = OffsetDateTime::now_utc();
//! let grant = Verifier::new(keyring).verify(link.token(), &RequestFacts::new(Method::Get, &path), now)?;
//!
//! let mut revocations = Revocations::new();
//! assert_eq!(revocations.check(grant.claims(), grant.link_id()), None);
//! // User 42 is banned: every link issued to them until now stops working.
//! revocations.revoke_user(
//!     "42",
//!     now + Duration::seconds(1),
//!     now + Duration::days(8),
//! )?;
//! assert!(matches!(
//!     revocations.check(grant.claims(), grant.link_id()),
//!     Some(Revoked::IssuedBefore { .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use base64_simd::URL_SAFE_NO_PAD;
use time::OffsetDateTime;

use crate::claims::{Claims, to_datetime};
use crate::limits::{MAX_SUBJECT_LEN, TAG_LEN};

/// The bytes of a [`LinkId`].
const LINK_ID_LEN: usize = 16;

/// A link's identity for revocation: the first 16 bytes of its MAC tag,
/// written as 22 base64url characters. Two links share one only if their
/// tags do, which a forger cannot arrange.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkId([u8; LINK_ID_LEN]);

impl std::hash::Hash for LinkId {
    /// Its first eight bytes, which already tell two links apart (a MAC's
    /// output): one word to hash rather than sixteen bytes.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(head));
    }
}

impl LinkId {
    pub(crate) fn from_tag(tag: &[u8; TAG_LEN]) -> LinkId {
        let mut id = [0u8; LINK_ID_LEN];
        id.copy_from_slice(&tag[..LINK_ID_LEN]);
        LinkId(id)
    }

    /// The id of the link whose token is `token`, read without checking its
    /// MAC: revoking a token that is not genuine is harmless.
    pub fn of_token(token: &str) -> Result<LinkId, crate::VerifyError> {
        crate::verify::with_decoded(token, |_payload, tag| Ok(LinkId::from_tag(tag)))
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode_to_string(self.0))
    }
}

impl fmt::Debug for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkId({self})")
    }
}

/// The text is not a [`LinkId`]: 22 base64url characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a link id is 22 base64url characters")]
pub struct InvalidLinkId;

impl FromStr for LinkId {
    type Err = InvalidLinkId;

    fn from_str(s: &str) -> Result<LinkId, InvalidLinkId> {
        let bytes = URL_SAFE_NO_PAD
            .decode_to_vec(s.as_bytes())
            .map_err(|_| InvalidLinkId)?;
        let id: [u8; LINK_ID_LEN] = bytes.try_into().map_err(|_| InvalidLinkId)?;
        Ok(LinkId(id))
    }
}

/// Why a link is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revoked {
    /// Its user's links issued before this time are revoked.
    IssuedBefore {
        /// The time.
        before: OffsetDateTime,
    },
    /// Its user's links of a lower generation are revoked.
    Generation {
        /// The lowest generation still valid.
        below: u64,
    },
    /// The link itself is revoked.
    Link,
}

impl fmt::Display for Revoked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revoked::IssuedBefore { before } => write!(
                f,
                "the user's links issued before {:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z are revoked",
                before.year(),
                u8::from(before.month()),
                before.day(),
                before.hour(),
                before.minute(),
                before.second()
            ),
            Revoked::Generation { below } => {
                write!(
                    f,
                    "the user's links of a generation below {below} are revoked"
                )
            }
            Revoked::Link => f.write_str("this link is revoked"),
        }
    }
}

/// Why a revocation cannot be recorded, or a revocations file cannot be
/// read. No message quotes the file's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationsError {
    /// The user id is not one a link can carry.
    #[error("user id must be 1 to {MAX_SUBJECT_LEN} printable ASCII characters without spaces")]
    User,
    /// A time is outside what a link can carry (years 1970 to 9999).
    #[error("time out of range")]
    Time,
    /// The file is not a revocations file; `line` is where, when known.
    #[error("revocations file{}: {problem}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    File {
        /// The line the problem is on (from 1).
        line: Option<usize>,
        /// What is wrong, without the file's text.
        problem: &'static str,
    },
}

/// The rules for one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct UserRules {
    /// Links issued before `.0` (Unix seconds) are revoked; dropped at `.1`.
    issued_before: Option<(i64, i64)>,
    /// Links of a generation below `.0` are revoked; dropped at `.1`.
    generation_below: Option<(u64, i64)>,
}

/// A set of revocation rules (see the module docs). Checking a link costs
/// a hash lookup of its user and one of its id, none while the set is
/// empty of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    /// By the user's bytes: the check looks up a link's without a UTF-8
    /// check.
    users: HashMap<Box<[u8]>, UserRules, Hasher>,
    /// Revoked links, and when each is dropped (Unix seconds).
    links: HashMap<LinkId, i64, Hasher>,
}

/// The maps' hasher: foldhash, seeded per process. The keys are not an
/// attacker's to choose (rules come from the operator, lookups from
/// authenticated links), so a fast hash is safe, and SipHash's cost was
/// most of the check's (BENCHMARKS.md, "Revocations").
type Hasher = foldhash::fast::RandomState;

/// Unix seconds of `t`, if a link can carry it.
fn seconds(t: OffsetDateTime) -> Result<i64, RevocationsError> {
    let s = t.unix_timestamp();
    if (0..=crate::limits::MAX_TIME as i64).contains(&s) {
        Ok(s)
    } else {
        Err(RevocationsError::Time)
    }
}

impl Revocations {
    /// An empty set: nothing revoked.
    pub fn new() -> Self {
        Revocations::default()
    }

    /// Whether the set holds no rule.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.links.is_empty()
    }

    /// How many rules the set holds (a user with both kinds counts twice).
    pub fn len(&self) -> usize {
        let user_rules: usize = self
            .users
            .values()
            .map(|r| {
                usize::from(r.issued_before.is_some()) + usize::from(r.generation_below.is_some())
            })
            .sum();
        user_rules + self.links.len()
    }

    /// Revokes `user`'s links issued before `before`, until `until` (when
    /// no such link can still be valid: `before` plus the verifiers'
    /// longest link lifetime and leeway). A later `before` for the same
    /// user replaces an earlier one.
    pub fn revoke_user(
        &mut self,
        user: &str,
        before: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<(), RevocationsError> {
        crate::limits::check_subject(user).map_err(|_| RevocationsError::User)?;
        let (before, until) = (seconds(before)?, seconds(until)?);
        let rules = self.users.entry(user.as_bytes().into()).or_default();
        let (b, u) = rules.issued_before.unwrap_or((before, until));
        rules.issued_before = Some((b.max(before), u.max(until)));
        Ok(())
    }

    /// Revokes `user`'s links whose generation is below `below` (a link
    /// without one counts as generation 0), until `until` (when no link
    /// signed before now can still be valid). A higher `below` for the same
    /// user replaces a lower one.
    pub fn revoke_generation(
        &mut self,
        user: &str,
        below: u64,
        until: OffsetDateTime,
    ) -> Result<(), RevocationsError> {
        crate::limits::check_subject(user).map_err(|_| RevocationsError::User)?;
        let until = seconds(until)?;
        let rules = self.users.entry(user.as_bytes().into()).or_default();
        let (b, u) = rules.generation_below.unwrap_or((below, until));
        rules.generation_below = Some((b.max(below), u.max(until)));
        Ok(())
    }

    /// Revokes one link, until `until` (its expiry plus the leeway).
    pub fn revoke_link(
        &mut self,
        link: LinkId,
        until: OffsetDateTime,
    ) -> Result<(), RevocationsError> {
        let until = seconds(until)?;
        let kept = self.links.entry(link).or_insert(until);
        *kept = (*kept).max(until);
        Ok(())
    }

    /// Records `entry` (as the `revoke_*` methods do).
    pub fn add(&mut self, entry: &Entry) -> Result<(), RevocationsError> {
        match entry {
            Entry::IssuedBefore {
                user,
                before,
                until,
            } => self.revoke_user(user, *before, *until),
            Entry::Generation { user, below, until } => {
                self.revoke_generation(user, *below, *until)
            }
            Entry::Link { id, until } => self.revoke_link(*id, *until),
        }
    }

    /// Adds every rule of `other` (a rule held by both keeps the stronger
    /// terms of each).
    pub fn merge(&mut self, other: &Revocations) {
        for (user, rules) in &other.users {
            let mine = self.users.entry(user.clone()).or_default();
            if let Some((before, until)) = rules.issued_before {
                let (b, u) = mine.issued_before.unwrap_or((before, until));
                mine.issued_before = Some((b.max(before), u.max(until)));
            }
            if let Some((below, until)) = rules.generation_below {
                let (b, u) = mine.generation_below.unwrap_or((below, until));
                mine.generation_below = Some((b.max(below), u.max(until)));
            }
        }
        for (id, until) in &other.links {
            let kept = self.links.entry(*id).or_insert(*until);
            *kept = (*kept).max(*until);
        }
    }

    /// Why the link with `claims` and id `link` is revoked, if it is.
    #[inline]
    pub fn check(&self, claims: &Claims, link: LinkId) -> Option<Revoked> {
        if !self.users.is_empty() {
            if let Some(rules) = self.users.get(claims.subject_bytes()) {
                if let Some((before, _)) = rules.issued_before {
                    if (claims.issued_at_secs() as i64) < before {
                        return Some(Revoked::IssuedBefore {
                            before: to_datetime(before as u64),
                        });
                    }
                }
                if let Some((below, _)) = rules.generation_below {
                    if claims.generation().unwrap_or(0) < below {
                        return Some(Revoked::Generation { below });
                    }
                }
            }
        }
        if !self.links.is_empty() && self.links.contains_key(&link) {
            return Some(Revoked::Link);
        }
        None
    }

    /// Drops the rules whose `until` is before `now`: no link they could
    /// refuse is still valid. Returns how many were dropped.
    pub fn prune(&mut self, now: OffsetDateTime) -> usize {
        let now = now.unix_timestamp();
        let before = self.len();
        for rules in self.users.values_mut() {
            if rules.issued_before.is_some_and(|(_, until)| until < now) {
                rules.issued_before = None;
            }
            if rules.generation_below.is_some_and(|(_, until)| until < now) {
                rules.generation_below = None;
            }
        }
        self.users
            .retain(|_, r| r.issued_before.is_some() || r.generation_below.is_some());
        self.links.retain(|_, until| *until >= now);
        before - self.len()
    }

    /// Every rule, for listing: users in order, then links.
    pub fn entries(&self) -> Vec<Entry> {
        let mut users: Vec<_> = self.users.iter().collect();
        users.sort_by(|a, b| a.0.cmp(b.0));
        // User ids are printable ASCII (checked when recorded).
        let text = |user: &[u8]| String::from_utf8_lossy(user).into_owned();
        let mut out = Vec::with_capacity(self.len());
        for (user, rules) in users {
            if let Some((before, until)) = rules.issued_before {
                out.push(Entry::IssuedBefore {
                    user: text(user),
                    before: to_datetime(before as u64),
                    until: to_datetime(until as u64),
                });
            }
            if let Some((below, until)) = rules.generation_below {
                out.push(Entry::Generation {
                    user: text(user),
                    below,
                    until: to_datetime(until as u64),
                });
            }
        }
        let mut links: Vec<_> = self.links.iter().collect();
        links.sort();
        out.extend(links.into_iter().map(|(id, until)| Entry::Link {
            id: *id,
            until: to_datetime(*until as u64),
        }));
        out
    }

    /// Reads the file form (see [`Revocations::to_toml`]).
    pub fn from_toml(text: &str) -> Result<Self, RevocationsError> {
        let file: File = toml::from_str(text).map_err(|e| RevocationsError::File {
            line: e.span().map(|s| line_of(text, s.start)),
            problem: "not a revocations file (tables [[user]], [[generation]] and [[link]])",
        })?;
        let at = |span: std::ops::Range<usize>, problem| RevocationsError::File {
            line: Some(line_of(text, span.start)),
            problem,
        };
        let time = |t: i64| {
            u64::try_from(t)
                .ok()
                .filter(|t| *t <= crate::limits::MAX_TIME)
                .map(to_datetime)
        };
        let mut set = Revocations::new();
        for u in file.user {
            let (Some(before), Some(until)) = (time(u.issued_before), time(u.until)) else {
                return Err(at(u.id.span(), "a time out of range"));
            };
            set.revoke_user(u.id.get_ref(), before, until)
                .map_err(|_| at(u.id.span(), "not a user id a link can carry"))?;
        }
        for g in file.generation {
            let Some(until) = time(g.until) else {
                return Err(at(g.user.span(), "a time out of range"));
            };
            set.revoke_generation(g.user.get_ref(), g.below, until)
                .map_err(|_| at(g.user.span(), "not a user id a link can carry"))?;
        }
        for l in file.link {
            let id =
                l.id.get_ref()
                    .parse::<LinkId>()
                    .map_err(|_| at(l.id.span(), "a link id is 22 base64url characters"))?;
            let Some(until) = time(l.until) else {
                return Err(at(l.id.span(), "a time out of range"));
            };
            set.revoke_link(id, until)
                .map_err(|_| at(l.id.span(), "a time out of range"))?;
        }
        Ok(set)
    }

    /// The file form: TOML, times in Unix seconds, rules in a fixed order.
    ///
    /// ```toml
    /// [[user]]            # links of user 42 issued before issued_before
    /// id = "42"
    /// issued_before = 1764928800
    /// until = 1765533630  # dropped after this
    ///
    /// [[generation]]      # links of user 7 with a generation below 3
    /// user = "7"
    /// below = 3
    /// until = 1765533630
    ///
    /// [[link]]            # one link, by its id
    /// id = "yQ3r0m0Xb6m1c2V9l8dQ1w"
    /// until = 1764929430
    /// ```
    pub fn to_toml(&self) -> String {
        let mut out = String::from(
            "# Revoked mediagate links, written by `mediagate revoke`. Times are Unix\n\
             # seconds; each rule is dropped after its `until`.\n",
        );
        for entry in self.entries() {
            let s = |t: OffsetDateTime| t.unix_timestamp();
            match entry {
                Entry::IssuedBefore {
                    user,
                    before,
                    until,
                } => out.push_str(&format!(
                    "\n[[user]]\nid = {}\nissued_before = {}\nuntil = {}\n",
                    toml_string(&user),
                    s(before),
                    s(until)
                )),
                Entry::Generation { user, below, until } => out.push_str(&format!(
                    "\n[[generation]]\nuser = {}\nbelow = {below}\nuntil = {}\n",
                    toml_string(&user),
                    s(until)
                )),
                Entry::Link { id, until } => out.push_str(&format!(
                    "\n[[link]]\nid = \"{id}\"\nuntil = {}\n",
                    s(until)
                )),
            }
        }
        out
    }
}

/// One rule of a [`Revocations`] set, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Entry {
    /// `user`'s links issued before `before`.
    IssuedBefore {
        /// The user.
        user: String,
        /// The time.
        before: OffsetDateTime,
        /// When the rule is dropped.
        until: OffsetDateTime,
    },
    /// `user`'s links of a generation below `below`.
    Generation {
        /// The user.
        user: String,
        /// The lowest generation still valid.
        below: u64,
        /// When the rule is dropped.
        until: OffsetDateTime,
    },
    /// One link.
    Link {
        /// Its id.
        id: LinkId,
        /// When the rule is dropped.
        until: OffsetDateTime,
    },
}

/// A user id as a TOML string: user ids are printable ASCII, so only `"`
/// and `\` need escaping.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn line_of(text: &str, at: usize) -> usize {
    let before = text.as_bytes().get(..at).unwrap_or(text.as_bytes());
    memchr::memchr_iter(b'\n', before).count() + 1
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    user: Vec<UserEntry>,
    #[serde(default)]
    generation: Vec<GenerationEntry>,
    #[serde(default)]
    link: Vec<LinkEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    id: toml::Spanned<String>,
    issued_before: i64,
    until: i64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerationEntry {
    user: toml::Spanned<String>,
    below: u64,
    until: i64,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    id: toml::Spanned<String>,
    until: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, Keyring, MediaPath, Method, RequestFacts, Signer, Verifier};
    use time::Duration;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(s).unwrap()
    }

    const T0: i64 = 1_800_000_000;

    /// A verified link for `user` issued at T0, with `generation`.
    fn grant(user: &str, generation: Option<u64>) -> crate::Grant {
        let keyring = Keyring::new(Key::new("k1", &[7u8; 32]).unwrap());
        let signer = Signer::new(keyring.clone());
        let mut b = signer
            .link(user, "/a")
            .issued_at(t(T0))
            .ttl(Duration::hours(1));
        if let Some(g) = generation {
            b = b.generation(g);
        }
        let link = b.sign().unwrap();
        let path = MediaPath::parse("/a").unwrap();
        Verifier::new(keyring)
            .verify(
                link.token(),
                &RequestFacts::new(Method::Get, &path),
                t(T0 + 60),
            )
            .unwrap()
    }

    fn check(set: &Revocations, g: &crate::Grant) -> Option<Revoked> {
        set.check(g.claims(), g.link_id())
    }

    #[test]
    fn each_kind_of_rule_refuses_what_it_names_and_nothing_else() {
        let (u42, u7) = (grant("42", None), grant("7", Some(3)));
        let mut set = Revocations::new();
        assert_eq!(check(&set, &u42), None);
        set.revoke_user("42", t(T0 + 1), t(T0 + 100_000)).unwrap();
        assert_eq!(
            check(&set, &u42),
            Some(Revoked::IssuedBefore { before: t(T0 + 1) })
        );
        assert_eq!(check(&set, &u7), None);
        // Issued at or after the time: valid.
        let mut later = Revocations::new();
        later.revoke_user("42", t(T0), t(T0 + 100_000)).unwrap();
        assert_eq!(check(&later, &u42), None);
        // Generations: 3 is below 4, not below 3; none counts as 0.
        set.revoke_generation("7", 3, t(T0 + 100_000)).unwrap();
        assert_eq!(check(&set, &u7), None);
        set.revoke_generation("7", 4, t(T0 + 100_000)).unwrap();
        assert_eq!(check(&set, &u7), Some(Revoked::Generation { below: 4 }));
        let mut gen_only = Revocations::new();
        gen_only
            .revoke_generation("42", 1, t(T0 + 100_000))
            .unwrap();
        assert_eq!(
            check(&gen_only, &u42),
            Some(Revoked::Generation { below: 1 })
        );
        // One link: that one only.
        let other = grant("42", Some(1));
        let mut links = Revocations::new();
        links.revoke_link(u42.link_id(), t(T0 + 3600)).unwrap();
        assert_eq!(check(&links, &u42), Some(Revoked::Link));
        assert_eq!(check(&links, &other), None);
        assert_ne!(u42.link_id(), other.link_id());
    }

    #[test]
    fn rules_drop_out_after_until_and_never_weaken() {
        let mut set = Revocations::new();
        set.revoke_user("42", t(T0 + 10), t(T0 + 1000)).unwrap();
        // An earlier time does not undo a later one.
        set.revoke_user("42", t(T0), t(T0 + 500)).unwrap();
        set.revoke_generation("42", 5, t(T0 + 2000)).unwrap();
        set.revoke_generation("42", 2, t(T0 + 100)).unwrap();
        let g = grant("42", Some(4));
        assert!(matches!(
            check(&set, &g),
            Some(Revoked::IssuedBefore { .. })
        ));
        assert_eq!(set.len(), 2);
        assert_eq!(set.prune(t(T0 + 1500)), 1);
        assert_eq!(check(&set, &g), Some(Revoked::Generation { below: 5 }));
        assert_eq!(set.prune(t(T0 + 2001)), 1);
        assert!(set.is_empty());
        // Merging keeps the stronger terms of each rule.
        let (mut a, mut b) = (Revocations::new(), Revocations::new());
        a.revoke_user("42", t(T0 + 10), t(T0 + 100)).unwrap();
        b.revoke_user("42", t(T0 + 5), t(T0 + 900)).unwrap();
        b.revoke_link(g.link_id(), t(T0 + 50)).unwrap();
        a.merge(&b);
        assert_eq!(a.len(), 2);
        assert_eq!(
            check(&a, &g),
            Some(Revoked::IssuedBefore { before: t(T0 + 10) })
        );
        assert_eq!(a.prune(t(T0 + 899)), 1, "the link rule, not the user's");
    }

    #[test]
    fn the_file_form_round_trips_and_refuses_what_it_cannot_read() {
        let mut set = Revocations::new();
        set.revoke_user("a\"b\\c", t(T0), t(T0 + 10)).unwrap();
        set.revoke_generation("7", 3, t(T0 + 20)).unwrap();
        set.revoke_link(grant("1", None).link_id(), t(T0 + 30))
            .unwrap();
        let text = set.to_toml();
        assert_eq!(Revocations::from_toml(&text).unwrap(), set);
        assert_eq!(Revocations::from_toml("").unwrap(), Revocations::new());
        for (bad, line) in [
            ("[[user]]\nid = \"42\"\nissued_before = 1\n", Some(1)),
            (
                "[[user]]\nid = \"a b\"\nissued_before = 1\nuntil = 2\n",
                Some(2),
            ),
            ("[[link]]\nid = \"short\"\nuntil = 2\n", Some(2)),
            (
                "[[generation]]\nuser = \"7\"\nbelow = -1\nuntil = 2\n",
                Some(3),
            ),
            (
                "[[user]]\nid = \"42\"\nissued_before = -5\nuntil = 2\n",
                Some(2),
            ),
            ("[[users]]\nid = \"42\"\n", Some(1)),
            ("not toml", Some(1)),
        ] {
            match Revocations::from_toml(bad) {
                Err(RevocationsError::File { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // No message quotes the file.
        let err = Revocations::from_toml("[[user]]\nid = \"SECRETish value\"\n").unwrap_err();
        assert!(!err.to_string().contains("SECRETish"), "{err}");
    }

    #[test]
    fn link_ids_print_and_parse_and_come_from_tokens() {
        let g = grant("42", None);
        let id = g.link_id();
        let text = id.to_string();
        assert_eq!(text.len(), 22);
        assert_eq!(text.parse::<LinkId>().unwrap(), id);
        assert!("!".repeat(22).parse::<LinkId>().is_err());
        let keyring = Keyring::new(Key::new("k1", &[7u8; 32]).unwrap());
        let signer = Signer::new(keyring);
        let link = signer
            .link("42", "/a")
            .issued_at(t(T0))
            .ttl(Duration::hours(1))
            .sign()
            .unwrap();
        assert_eq!(LinkId::of_token(link.token()).unwrap(), id);
        assert!(LinkId::of_token("nope").is_err());
    }
}
