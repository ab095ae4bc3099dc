//! Decoding the two pgoutput messages the WAL relay needs: `Relation` (column names of a
//! table) and `Insert` (one new row). Begin, Commit and logical messages arrive already
//! decoded from the replication client; updates, deletes and everything else are ignored.

use std::collections::HashMap;

/// A table as announced by a `Relation` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
}

/// What a pgoutput message means to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Relation(Relation),
    /// A new row: the relation id and each column's text value (`None` for NULL).
    Insert {
        relation: u32,
        values: Vec<Option<String>>,
    },
    /// Anything else (update, delete, truncate, type, origin): not the relay's business.
    Other,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(String);

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| DecodeError(format!("needs {n} more bytes at offset {}", self.at)))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("two bytes")))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    fn cstring(&mut self) -> Result<String, DecodeError> {
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|b| *b == 0).ok_or_else(|| DecodeError("unterminated string".into()))?;
        let text = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(text)
    }
}

/// Decodes one pgoutput message (the payload of an XLogData frame).
pub fn decode(bytes: &[u8]) -> Result<Change, DecodeError> {
    let mut r = Reader { bytes, at: 0 };
    match r.u8()? {
        b'R' => {
            let id = r.u32()?;
            let namespace = r.cstring()?;
            let name = r.cstring()?;
            let _replica_identity = r.u8()?;
            let count = r.u16()?;
            let mut columns = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let _flags = r.u8()?;
                columns.push(r.cstring()?);
                let _type_oid = r.u32()?;
                let _type_modifier = r.u32()?;
            }
            Ok(Change::Relation(Relation { id, namespace, name, columns }))
        }
        b'I' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'N' => {}
                other => return Err(DecodeError(format!("insert without a new tuple (marker {other})"))),
            }
            let count = r.u16()?;
            let mut values = Vec::with_capacity(count as usize);
            for _ in 0..count {
                values.push(match r.u8()? {
                    b'n' | b'u' => None,
                    b't' | b'b' => {
                        let len = r.u32()? as usize;
                        Some(String::from_utf8_lossy(r.take(len)?).into_owned())
                    }
                    other => return Err(DecodeError(format!("unknown column kind {other}"))),
                });
            }
            Ok(Change::Insert { relation, values })
        }
        _ => Ok(Change::Other),
    }
}

/// The relations seen on a stream, to read inserted rows by column name.
#[derive(Default)]
pub struct Relations {
    by_id: HashMap<u32, Relation>,
}

impl Relations {
    pub fn remember(&mut self, relation: Relation) {
        self.by_id.insert(relation.id, relation);
    }

    /// The relation of an insert, when it is one of `tables` (`name` or `schema.name`).
    pub fn table(&self, id: u32, tables: &[String]) -> Option<&Relation> {
        self.by_id
            .get(&id)
            .filter(|r| tables.iter().any(|t| *t == r.name || *t == format!("{}.{}", r.namespace, r.name)))
    }
}

impl Relation {
    /// The value of a named column in an inserted row.
    pub fn value<'v>(&self, values: &'v [Option<String>], column: &str) -> Option<&'v str> {
        let index = self.columns.iter().position(|c| c == column)?;
        values.get(index)?.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_message() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16384u32.to_be_bytes());
        m.extend(b"public\0outbox\0");
        m.push(b'd');
        m.extend(2u16.to_be_bytes());
        for name in ["id", "payload"] {
            m.push(1);
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(25u32.to_be_bytes());
            m.extend((-1i32).to_be_bytes());
        }
        m
    }

    fn insert_message(id: &str, payload: Option<&str>) -> Vec<u8> {
        let mut m = vec![b'I'];
        m.extend(16384u32.to_be_bytes());
        m.push(b'N');
        m.extend(2u16.to_be_bytes());
        for value in [Some(id), payload] {
            match value {
                Some(v) => {
                    m.push(b't');
                    m.extend((v.len() as u32).to_be_bytes());
                    m.extend(v.as_bytes());
                }
                None => m.push(b'n'),
            }
        }
        m
    }

    #[test]
    fn relation_and_insert_decode_to_named_values() {
        let Change::Relation(relation) = decode(&relation_message()).unwrap() else { panic!("not a relation") };
        assert_eq!((relation.namespace.as_str(), relation.name.as_str()), ("public", "outbox"));
        assert_eq!(relation.columns, ["id", "payload"]);
        let mut relations = Relations::default();
        relations.remember(relation);
        let Change::Insert { relation: id, values } = decode(&insert_message("abc", Some("{\"n\":1}"))).unwrap() else {
            panic!("not an insert")
        };
        let table = relations.table(id, &["outbox".to_string()]).expect("outbox is followed");
        assert_eq!(table.value(&values, "id"), Some("abc"));
        assert_eq!(table.value(&values, "payload"), Some("{\"n\":1}"));
        assert!(relations.table(id, &["public.outbox".to_string()]).is_some());
        assert!(relations.table(id, &["orders".to_string()]).is_none());
        let Change::Insert { values, .. } = decode(&insert_message("abc", None)).unwrap() else { panic!() };
        assert_eq!(table.value(&values, "payload"), None);
    }

    #[test]
    fn other_messages_are_ignored_and_truncated_ones_rejected() {
        assert_eq!(decode(b"D\0\0\0\x01K"), Ok(Change::Other));
        let message = insert_message("abc", Some("x"));
        assert!(decode(&message[..message.len() - 1]).is_err());
        assert!(decode(&relation_message()[..8]).is_err());
        assert!(decode(b"").is_err());
    }
}
