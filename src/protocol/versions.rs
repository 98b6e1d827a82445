//! Which api keys and versions are served. One table per backend says what it implements; the
//! session answers ApiVersions from that table and refuses everything outside it.
use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct VersionTable {
    ranges: BTreeMap<i16, VersionRange>,
}

impl VersionTable {
    /// Builds a table from `(api key, min, max)` rows, narrowed to what the `kafka-protocol`
    /// crate can decode. Rows with no version left are dropped.
    pub fn from_rows(rows: &[(ApiKey, i16, i16)]) -> VersionTable {
        let mut ranges = BTreeMap::new();
        for &(key, min, max) in rows {
            let range = VersionRange { min, max }.intersect(&key.valid_versions());
            if !range.is_empty() {
                ranges.insert(key as i16, range);
            }
        }
        VersionTable { ranges }
    }

    /// Everything the codec can decode: the ceiling for any backend.
    pub fn codec() -> VersionTable {
        let ranges = ApiKey::iter().map(|k| (k as i16, k.valid_versions())).collect();
        VersionTable { ranges }
    }

    pub fn range(&self, key: ApiKey) -> Option<VersionRange> {
        self.ranges.get(&(key as i16)).copied()
    }

    pub fn supports(&self, key: ApiKey, version: i16) -> bool {
        self.range(key).is_some_and(|r| r.min <= version && version <= r.max)
    }

    /// The versions both tables serve.
    pub fn intersect(&self, other: &VersionTable) -> VersionTable {
        let ranges = self
            .ranges
            .iter()
            .filter_map(|(k, a)| {
                let both = a.intersect(other.ranges.get(k)?);
                (!both.is_empty()).then_some((*k, both))
            })
            .collect();
        VersionTable { ranges }
    }

    /// Adds `other`'s apis (for apis both list, `other` wins).
    pub fn extend(&mut self, other: &VersionTable) {
        self.ranges.extend(other.ranges.iter().map(|(k, r)| (*k, *r)));
    }

    pub fn iter(&self) -> impl Iterator<Item = (i16, VersionRange)> + '_ {
        self.ranges.iter().map(|(k, r)| (*k, *r))
    }

    /// The ApiVersions answer listing this table. No tagged feature fields are sent: librdkafka
    /// before 2.1 fails to parse an ApiVersions v3 response that carries them.
    pub fn api_versions_response(&self) -> ApiVersionsResponse {
        let api_keys = self
            .iter()
            .map(|(key, r)| {
                ApiVersion::default()
                    .with_api_key(key)
                    .with_min_version(r.min)
                    .with_max_version(r.max)
            })
            .collect();
        ApiVersionsResponse::default().with_api_keys(api_keys)
    }

    /// Kafka's answer to an ApiVersions request of a version it does not know (KIP-511): encoded
    /// as v0, UNSUPPORTED_VERSION, and only the ApiVersions range so the client can retry lower.
    pub fn unsupported_api_versions_response(&self) -> ApiVersionsResponse {
        let range = self
            .range(ApiKey::ApiVersions)
            .unwrap_or(VersionRange { min: 0, max: 0 });
        ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(vec![ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(range.min)
                .with_max_version(range.max)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_narrowed_to_the_codec_and_intersected() {
        let t = VersionTable::from_rows(&[(ApiKey::Produce, 0, 9), (ApiKey::Fetch, 4, 12)]);
        // The codec starts Produce at v3.
        assert_eq!(t.range(ApiKey::Produce), Some(VersionRange { min: 3, max: 9 }));
        assert!(t.supports(ApiKey::Fetch, 12));
        assert!(!t.supports(ApiKey::Fetch, 13));
        assert!(!t.supports(ApiKey::Metadata, 1));
        let other = VersionTable::from_rows(&[(ApiKey::Fetch, 0, 11)]);
        let both = t.intersect(&other);
        assert_eq!(both.range(ApiKey::Fetch), Some(VersionRange { min: 4, max: 11 }));
        assert_eq!(both.range(ApiKey::Produce), None);
    }

    #[test]
    fn unsupported_answer_lists_only_api_versions() {
        let t = VersionTable::from_rows(&[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)]);
        let r = t.unsupported_api_versions_response();
        assert_eq!(r.error_code, 35);
        assert_eq!(r.api_keys.len(), 1);
        assert_eq!((r.api_keys[0].api_key, r.api_keys[0].max_version), (18, 3));
    }
}
