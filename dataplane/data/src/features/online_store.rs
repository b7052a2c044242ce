//! The online feature store: the newest offline partition's values in Redis, one key per
//! entity (`recsys:features:<schema hash>:<user|item>:<id>`, little-endian f32s) with the
//! definition's TTL. Serving reads a user and all of a request's candidates in one MGET and
//! lays the row out with the same [`recsys_core::features::assemble`] the offline job uses.

use anyhow::{ensure, Context as _};
use recsys_core::features::{
    assemble_with_context, context_row, Context, Entity, FeatureSpec, FeatureTable,
};
use std::time::Duration;

const CHUNK: usize = 2_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct OnlineStore {
    url: String,
    connection: redis::Connection,
    prefix: String,
    user_width: usize,
    item_width: usize,
}

/// Every key of a definition starts with this; the hash keeps definitions apart.
pub fn key_prefix(spec: &FeatureSpec) -> String {
    format!("recsys:features:{}", spec.schema_hash())
}

/// The key holding the as-of time of what was last materialized under `prefix`: it changes
/// with every materialization, so readers know when to drop values they keep.
pub fn marker_key(prefix: &str) -> String {
    format!("{prefix}:as_of")
}

/// The key of one entity's values under the definition with prefix `prefix`.
pub fn entity_key(prefix: &str, entity: Entity, id: &str) -> String {
    format!("{prefix}:{}:{id}", entity.as_str())
}

fn encode(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Little-endian f32s of exactly `width` values; None otherwise.
pub fn decode(bytes: &[u8], width: usize) -> Option<Vec<f32>> {
    (bytes.len() == width * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

impl OnlineStore {
    /// Connects and checks with PING, so an unreachable Redis fails here with its address.
    pub fn connect(url: &str, spec: &FeatureSpec) -> anyhow::Result<Self> {
        let unreachable = || {
            format!(
                "cannot reach Redis at {} for the online feature store",
                recsys_core::redact::url(url)
            )
        };
        let client = redis::Client::open(url)
            .with_context(|| format!("invalid Redis URL {}", recsys_core::redact::url(url)))?;
        let mut connection = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .with_context(unreachable)?;
        connection.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        connection.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .with_context(unreachable)?;
        Ok(Self {
            url: url.to_owned(),
            connection,
            prefix: key_prefix(spec),
            user_width: spec.user.width(),
            item_width: spec.item.width(),
        })
    }

    pub fn key(&self, entity: Entity, id: &str) -> String {
        entity_key(&self.prefix, entity, id)
    }

    fn sequence_key(&self, id: &str) -> String {
        format!("{}:user_recent:{id}", self.prefix)
    }

    fn width(&self, entity: Entity) -> usize {
        match entity {
            Entity::User => self.user_width,
            Entity::Item => self.item_width,
        }
    }

    /// Writes every row (and sequence) of `table` with `ttl`, pipelined; returns keys written.
    pub fn write(
        &mut self,
        table: &FeatureTable,
        ttl: Duration,
        progress: &dyn Fn(u64),
    ) -> anyhow::Result<u64> {
        ensure!(
            table.width() == self.width(table.entity),
            "the {} table has {} columns, the definition {}",
            table.entity.as_str(),
            table.width(),
            self.width(table.entity)
        );
        let ttl = ttl.as_secs().max(1);
        let mut written = 0u64;
        let mut start = 0;
        while start < table.len() {
            let end = (start + CHUNK).min(table.len());
            let mut pipe = redis::pipe();
            for r in start..end {
                let key = self.key(table.entity, &table.keys[r]);
                pipe.cmd("SET")
                    .arg(key)
                    .arg(encode(table.row(r)))
                    .arg("EX")
                    .arg(ttl)
                    .ignore();
                if let Some(seq) = table.sequences.get(r) {
                    let text = serde_json::to_string(seq)?;
                    pipe.cmd("SET")
                        .arg(self.sequence_key(&table.keys[r]))
                        .arg(text)
                        .arg("EX")
                        .arg(ttl)
                        .ignore();
                    written += 1;
                }
            }
            pipe.query::<()>(&mut self.connection)
                .with_context(|| format!("writing features to Redis at {}", self.url))?;
            written += (end - start) as u64;
            progress(end as u64);
            start = end;
        }
        Ok(written)
    }

    /// Records what the store holds (read by serving to report staleness).
    pub fn write_marker(&mut self, as_of: i64, ttl: Duration) -> anyhow::Result<()> {
        redis::cmd("SET")
            .arg(marker_key(&self.prefix))
            .arg(as_of)
            .arg("EX")
            .arg(ttl.as_secs().max(1))
            .query::<()>(&mut self.connection)
            .with_context(|| format!("writing to Redis at {}", self.url))
    }

    /// Values of `ids` (None where the store has none), in one round trip.
    pub fn read(&mut self, entity: Entity, ids: &[&str]) -> anyhow::Result<Vec<Option<Vec<f32>>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(entity, id)).collect();
        let found: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query(&mut self.connection)
            .with_context(|| format!("reading features from Redis at {}", self.url))?;
        let width = self.width(entity);
        found
            .into_iter()
            .zip(ids)
            .map(|(bytes, id)| match bytes {
                None => Ok(None),
                Some(b) => decode(&b, width).map(Some).with_context(|| {
                    format!(
                        "{} {id}: stored value has {} bytes, expected {}",
                        entity.as_str(),
                        b.len(),
                        width * 4
                    )
                }),
            })
            .collect()
    }

    pub fn read_sequence(&mut self, user: &str) -> anyhow::Result<Option<Vec<String>>> {
        let text: Option<String> = redis::cmd("GET")
            .arg(self.sequence_key(user))
            .query(&mut self.connection)
            .with_context(|| format!("reading from Redis at {}", self.url))?;
        text.map(|t| serde_json::from_str(&t).context("a stored sequence is not a JSON list"))
            .transpose()
    }

    /// The serving path's feature rows for `user` and each of `items` (row-major, in
    /// [`FeatureSpec::vector_names`] order): one MGET per entity kind, then the offline job's row layout.
    pub fn candidate_rows(
        &mut self,
        spec: &FeatureSpec,
        user: &str,
        items: &[&str],
        ctx: &Context,
    ) -> anyhow::Result<Vec<f32>> {
        let user_values = self.read(Entity::User, &[user])?.pop().flatten();
        let item_values = self.read(Entity::Item, items)?;
        let mut context = Vec::new();
        context_row(spec, ctx, &mut context);
        let width = spec.user.width() + spec.item.width() + context.len();
        let mut out = Vec::with_capacity(items.len() * width);
        for item in &item_values {
            let (user, item) = (user_values.as_deref(), item.as_deref());
            assemble_with_context(spec, user, item, &context, &mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_exactly_and_a_wrong_length_is_refused() {
        let v = [0.1f32, -3.5, f32::MAX];
        assert_eq!(decode(&encode(&v), 3), Some(v.to_vec()));
        assert_eq!(decode(&encode(&v), 2), None);
    }

    #[test]
    fn an_unreachable_redis_is_a_clear_error() {
        let err = OnlineStore::connect("redis://127.0.0.1:1/", &FeatureSpec::default_spec())
            .err()
            .expect("nothing listens on port 1");
        let text = format!("{err:#}");
        assert!(
            text.contains("cannot reach Redis at redis://127.0.0.1:1/"),
            "{text}"
        );
    }
}
