//! DescribeUserScramCredentials (API 50) and AlterUserScramCredentials (API 51) against the users file.
//! The caller checks authorization (super users only) before calling.
//!
//! Semantics follow Kafka's KRaft code:
//! * Describe (`metadata/.../image/ScramImage.describe`): null or empty `users` = every user; a name
//!   given twice → DUPLICATE_RESOURCE "Cannot describe SCRAM credentials for the same user twice in a
//!   single request: <user>"; a user without credentials → RESOURCE_NOT_FOUND "Attempt to describe a
//!   user credential that does not exist: <user>". Only mechanism and iterations are returned.
//! * Alter (`metadata/.../controller/ScramControlManager.alterCredentials`): deletions first, then
//!   upsertions; a user named again in the same request → DUPLICATE_RESOURCE "A user credential cannot be
//!   altered twice in the same request" (a user that already has an error is skipped); empty name →
//!   UNACCEPTABLE_CREDENTIAL "Username must not be empty"; unknown mechanism → UNSUPPORTED_SASL_MECHANISM
//!   "Unknown SCRAM mechanism"; iterations below 4096 → UNACCEPTABLE_CREDENTIAL "Too few iterations",
//!   above 16384 → "Too many iterations"; deleting a missing credential → RESOURCE_NOT_FOUND "Attempt to
//!   delete a user credential that does not exist". The valid changes are saved together, atomically.
//!   Results: successful deletions, successful upsertions, then errors (Kafka's order among them comes
//!   from a HashMap; kgate keeps request order).
//! * kgate-only checks (UNACCEPTABLE_CREDENTIAL): an empty salt, and a salted password whose length is
//!   not the hash length; no password can produce either.
//! * If the users file cannot be written (or none is configured), every otherwise valid user gets
//!   UNKNOWN_SERVER_ERROR with the reason.
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::credentials::{check_salted, CredentialStore, ScramCredential, ScramMechanism, UserTable};

const DUPLICATE_ALTER: &str = "A user credential cannot be altered twice in the same request";
const DUPLICATE_DESCRIBE: &str = "Cannot describe SCRAM credentials for the same user twice in a single request: ";
const DESCRIBE_MISSING: &str = "Attempt to describe a user credential that does not exist: ";
const DELETE_MISSING: &str = "Attempt to delete a user credential that does not exist";

pub fn describe_user_scram_credentials(
    store: &CredentialStore,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let table = store.snapshot();
    // (name, named more than once)
    let mut wanted: Vec<(StrBytes, bool)> = Vec::new();
    match req.users {
        Some(users) if !users.is_empty() => {
            for user in users {
                match wanted.iter_mut().find(|(n, _)| *n == user.name) {
                    Some(entry) => entry.1 = true,
                    None => wanted.push((user.name, false)),
                }
            }
        }
        _ => {
            wanted = table
                .users()
                .into_iter()
                .map(|(name, _)| (StrBytes::from_string(name), false))
                .collect()
        }
    }
    let results = wanted
        .into_iter()
        .map(|(name, duplicate)| {
            let result = DescribeUserScramCredentialsResult::default();
            if duplicate {
                let message = format!("{DUPLICATE_DESCRIBE}{}", name.as_str());
                return result
                    .with_user(name)
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(StrBytes::from_string(message)));
            }
            match table.mechanisms(name.as_str()).filter(|m| !m.is_empty()) {
                Some(mechanisms) => result.with_user(name).with_credential_infos(
                    mechanisms
                        .into_iter()
                        .map(|(m, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(m.kafka_type())
                                .with_iterations(iterations as i32)
                        })
                        .collect(),
                ),
                None => {
                    let message = format!("{DESCRIBE_MISSING}{}", name.as_str());
                    result
                        .with_user(name)
                        .with_error_code(ResponseError::ResourceNotFound.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                }
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

enum Change {
    Delete(ScramMechanism),
    Upsert(ScramMechanism, ScramCredential),
}

enum Outcome {
    Change(Change),
    Error(ResponseError, String),
}

fn validate_name_and_mechanism(name: &str, mechanism: i8) -> Result<ScramMechanism, (ResponseError, String)> {
    if name.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    ScramMechanism::from_kafka_type(mechanism).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism".into(),
        )
    })
}

pub fn alter_user_scram_credentials(
    store: &CredentialStore,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let AlterUserScramCredentialsRequest {
        deletions, upsertions, ..
    } = req;
    // Validation needs the current credentials (deletions of missing ones), and the changes must be
    // saved atomically with what was checked: both happen inside one store update.
    let decide = |table: &mut UserTable| -> Vec<(String, Outcome)> {
        let mut outcomes: Vec<(String, Outcome)> = Vec::new();
        fn slot<'a>(outcomes: &'a mut [(String, Outcome)], name: &str) -> Option<&'a mut Outcome> {
            outcomes.iter_mut().find(|(n, _)| n == name).map(|(_, o)| o)
        }
        fn duplicate() -> Outcome {
            Outcome::Error(ResponseError::DuplicateResource, DUPLICATE_ALTER.into())
        }
        for deletion in &deletions {
            let name = deletion.name.as_str();
            match slot(&mut outcomes, name) {
                Some(Outcome::Error(..)) => {}
                Some(outcome) => *outcome = duplicate(),
                None => {
                    let outcome = match validate_name_and_mechanism(name, deletion.mechanism) {
                        Err((code, msg)) => Outcome::Error(code, msg),
                        Ok(m) if table.get(name, m).is_none() => {
                            Outcome::Error(ResponseError::ResourceNotFound, DELETE_MISSING.into())
                        }
                        Ok(m) => Outcome::Change(Change::Delete(m)),
                    };
                    outcomes.push((name.to_owned(), outcome));
                }
            }
        }
        for upsertion in &upsertions {
            let name = upsertion.name.as_str();
            match slot(&mut outcomes, name) {
                Some(Outcome::Error(..)) => {}
                Some(outcome) => *outcome = duplicate(),
                None => {
                    let outcome = match validate_name_and_mechanism(name, upsertion.mechanism) {
                        Err((code, msg)) => Outcome::Error(code, msg),
                        Ok(m) if upsertion.iterations < m.min_iterations() as i32 => {
                            Outcome::Error(ResponseError::UnacceptableCredential, "Too few iterations".into())
                        }
                        Ok(m) if upsertion.iterations > m.max_iterations() as i32 => {
                            Outcome::Error(ResponseError::UnacceptableCredential, "Too many iterations".into())
                        }
                        Ok(m) => match check_salted(m, &upsertion.salt, &upsertion.salted_password) {
                            Err(e) => Outcome::Error(ResponseError::UnacceptableCredential, capitalize(&e.to_string())),
                            Ok(()) => Outcome::Change(Change::Upsert(
                                m,
                                ScramCredential::from_salted_password(
                                    m,
                                    upsertion.salt.to_vec(),
                                    &upsertion.salted_password,
                                    upsertion.iterations as u32,
                                ),
                            )),
                        },
                    };
                    outcomes.push((name.to_owned(), outcome));
                }
            }
        }
        for (name, outcome) in &outcomes {
            match outcome {
                Outcome::Change(Change::Delete(m)) => {
                    table.remove(name, Some(*m));
                }
                Outcome::Change(Change::Upsert(m, credential)) => table.upsert(name, *m, credential.clone()),
                Outcome::Error(..) => {}
            }
        }
        outcomes
    };
    let outcomes = match store.update(decide) {
        Ok(outcomes) => outcomes,
        Err(err) => {
            // Nothing was saved. Run the checks again on a scratch copy to report per-user errors, and
            // the save failure for everyone else.
            let mut scratch = (*store.snapshot()).clone();
            let reason = format!("The credentials could not be saved: {err}");
            decide(&mut scratch)
                .into_iter()
                .map(|(name, outcome)| match outcome {
                    Outcome::Change(_) => (name, Outcome::Error(ResponseError::UnknownServerError, reason.clone())),
                    error => (name, error),
                })
                .collect()
        }
    };
    // Successes carry a null ErrorMessage, as ScramControlManager sets it.
    let result = |name: &str| {
        AlterUserScramCredentialsResult::default()
            .with_user(StrBytes::from_string(name.to_owned()))
            .with_error_message(None)
    };
    let mut results = Vec::with_capacity(outcomes.len());
    for want_delete in [true, false] {
        for (name, outcome) in &outcomes {
            if let Outcome::Change(change) = outcome {
                if matches!(change, Change::Delete(_)) == want_delete {
                    results.push(result(name));
                }
            }
        }
    }
    for (name, outcome) in &outcomes {
        if let Outcome::Error(code, message) = outcome {
            results.push(
                result(name)
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message.clone()))),
            );
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::crypto;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
    use std::sync::Arc;

    const PW: &str = "admin-set-password";

    fn store() -> (tempfile::TempDir, Arc<CredentialStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CredentialStore::open(&dir.path().join("users.toml")).expect("open");
        store
            .upsert_password("alice", ScramMechanism::Sha256, 4096, "a")
            .expect("upsert");
        store
            .upsert_password("alice", ScramMechanism::Sha512, 8192, "a")
            .expect("upsert");
        store
            .upsert_password("bob", ScramMechanism::Sha512, 5000, "b")
            .expect("upsert");
        (dir, store)
    }

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    /// (user, error code, error message, [(mechanism, iterations)])
    type Described = (String, i16, Option<String>, Vec<(i8, i32)>);

    fn describe(store: &CredentialStore, users: Option<&[&str]>) -> Vec<Described> {
        let req = DescribeUserScramCredentialsRequest::default()
            .with_users(users.map(|u| u.iter().map(|n| UserName::default().with_name(s(n))).collect()));
        let resp = describe_user_scram_credentials(store, req);
        assert_eq!(resp.error_code, 0);
        resp.results
            .into_iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                    r.credential_infos.iter().map(|c| (c.mechanism, c.iterations)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn describe_all_some_missing_and_duplicate() {
        let (_d, store) = store();
        // Successful results keep the generated default ErrorMessage "" (Kafka's Java default too).
        let alice = ("alice".to_string(), 0, Some(String::new()), vec![(1, 4096), (2, 8192)]);
        let bob = ("bob".to_string(), 0, Some(String::new()), vec![(2, 5000)]);
        assert_eq!(describe(&store, None), vec![alice.clone(), bob.clone()]);
        assert_eq!(
            describe(&store, Some(&[])),
            vec![alice.clone(), bob.clone()],
            "empty list = all, like Kafka"
        );
        assert_eq!(describe(&store, Some(&["bob"])), vec![bob]);
        assert_eq!(
            describe(&store, Some(&["carol", "alice", "carol"])),
            vec![
                (
                    "carol".to_string(),
                    ResponseError::DuplicateResource.code(),
                    Some("Cannot describe SCRAM credentials for the same user twice in a single request: carol".into()),
                    vec![]
                ),
                alice,
            ]
        );
        assert_eq!(
            describe(&store, Some(&["dave"])),
            vec![(
                "dave".to_string(),
                ResponseError::ResourceNotFound.code(),
                Some("Attempt to describe a user credential that does not exist: dave".into()),
                vec![]
            )]
        );
        assert!(describe(&CredentialStore::empty(), None).is_empty());
    }

    fn upsert(name: &str, mechanism: i8, iterations: i32, password: &str) -> ScramCredentialUpsertion {
        let salt = b"admin-client-salt".to_vec();
        let salted = match ScramMechanism::from_kafka_type(mechanism) {
            Some(m) => crypto::salted_password(m, password.as_bytes(), &salt, iterations.max(1) as u32),
            None => vec![0; 32],
        };
        ScramCredentialUpsertion::default()
            .with_name(s(name))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(salt.into())
            .with_salted_password(salted.into())
    }

    fn delete(name: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(s(name))
            .with_mechanism(mechanism)
    }

    fn alter(
        store: &CredentialStore,
        deletions: Vec<ScramCredentialDeletion>,
        upsertions: Vec<ScramCredentialUpsertion>,
    ) -> Vec<(String, i16, Option<String>)> {
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(deletions)
            .with_upsertions(upsertions);
        alter_user_scram_credentials(store, req)
            .results
            .into_iter()
            .map(|r| (r.user.to_string(), r.error_code, r.error_message.map(|m| m.to_string())))
            .collect()
    }

    fn ok(name: &str) -> (String, i16, Option<String>) {
        (name.to_string(), 0, None)
    }

    fn err(name: &str, code: ResponseError, msg: &str) -> (String, i16, Option<String>) {
        (name.to_string(), code.code(), Some(msg.to_string()))
    }

    #[test]
    fn upsert_and_delete_succeed_and_persist() {
        let (d, store) = store();
        let got = alter(
            &store,
            vec![delete("bob", 2)],
            vec![upsert("carol", 1, 4096, PW), upsert("alice", 2, 16384, PW)],
        );
        assert_eq!(got, vec![ok("bob"), ok("carol"), ok("alice")]);
        let reopened = CredentialStore::open(&d.path().join("users.toml")).expect("reopen");
        assert!(
            reopened.verify_password("carol", PW),
            "the salted password is the admin client's derivation"
        );
        assert_eq!(
            reopened.users().iter().map(|u| u.0.as_str()).collect::<Vec<_>>(),
            ["alice", "carol"]
        );
        assert_eq!(
            reopened
                .scram("alice", ScramMechanism::Sha512)
                .expect("cred")
                .iterations,
            16384
        );
        assert!(reopened.verify_password("alice", PW));
    }

    #[test]
    fn validation_errors_match_kafka() {
        let (_d, store) = store();
        let got = alter(
            &store,
            vec![delete("bob", 1), delete("", 1), delete("x", 0)],
            vec![
                upsert("few", 1, 4095, PW),
                upsert("many", 2, 16385, PW),
                upsert("neg", 1, -1, PW),
                upsert("mech", 3, 4096, PW),
                upsert("", 1, 4096, PW),
            ],
        );
        assert_eq!(
            got,
            vec![
                err(
                    "bob",
                    ResponseError::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist"
                ),
                err("", ResponseError::UnacceptableCredential, "Username must not be empty"),
                err("x", ResponseError::UnsupportedSaslMechanism, "Unknown SCRAM mechanism"),
                err("few", ResponseError::UnacceptableCredential, "Too few iterations"),
                err("many", ResponseError::UnacceptableCredential, "Too many iterations"),
                err("neg", ResponseError::UnacceptableCredential, "Too few iterations"),
                err(
                    "mech",
                    ResponseError::UnsupportedSaslMechanism,
                    "Unknown SCRAM mechanism"
                ),
            ],
            "the second empty name is skipped: it already has an error"
        );
        assert_eq!(store.users().len(), 2, "nothing changed");
    }

    #[test]
    fn empty_salt_or_bad_salted_password_is_unacceptable() {
        let (_d, store) = store();
        let got = alter(
            &store,
            vec![],
            vec![
                upsert("a", 1, 4096, PW).with_salt(Default::default()),
                upsert("b", 1, 4096, PW).with_salted_password(Default::default()),
                upsert("c", 2, 4096, PW).with_salted_password(vec![1u8; 32].into()),
            ],
        );
        assert_eq!(got.len(), 3);
        for (user, code, message) in &got {
            assert_eq!(*code, ResponseError::UnacceptableCredential.code(), "{user}");
            assert!(
                message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("The salt") || m.starts_with("The salted")),
                "{message:?}"
            );
        }
    }

    #[test]
    fn the_same_user_twice_is_a_duplicate_and_nothing_else_of_it_happens() {
        let (_d, store) = store();
        let got = alter(
            &store,
            vec![delete("alice", 1), delete("bob", 2), delete("bob", 2)],
            vec![
                upsert("alice", 2, 4096, PW),
                upsert("carol", 1, 4096, PW),
                upsert("carol", 2, 4096, PW),
                upsert("dave", 1, 4096, PW),
            ],
        );
        assert_eq!(
            got,
            vec![
                ok("dave"),
                err("alice", ResponseError::DuplicateResource, DUPLICATE_ALTER),
                err("bob", ResponseError::DuplicateResource, DUPLICATE_ALTER),
                err("carol", ResponseError::DuplicateResource, DUPLICATE_ALTER),
            ]
        );
        let users = store.users();
        assert_eq!(
            users.iter().map(|u| u.0.as_str()).collect::<Vec<_>>(),
            ["alice", "bob", "dave"]
        );
        assert_eq!(users[0].1.len(), 2, "alice untouched");
    }

    #[test]
    fn save_failure_is_reported_per_user() {
        let store = CredentialStore::empty();
        let got = alter(
            &store,
            vec![delete("x", 1)],
            vec![upsert("carol", 1, 4096, PW), upsert("few", 1, 1, PW)],
        );
        assert_eq!(got[0], err("x", ResponseError::ResourceNotFound, DELETE_MISSING));
        assert_eq!(got[1].0, "carol");
        assert_eq!(got[1].1, ResponseError::UnknownServerError.code());
        assert!(
            got[1].2.as_deref().is_some_and(|m| m.contains("no users file")),
            "{got:?}"
        );
        assert_eq!(
            got[2],
            err("few", ResponseError::UnacceptableCredential, "Too few iterations")
        );
    }
}
