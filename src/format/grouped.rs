//! Grouped payload layout: the payload of a pack record with codec 2 (`Codec::Grouped`).
//!
//! A chunk of fixed-size records (float values, quantized blocks) is split field by field into
//! planes, plane `f` holding field `f` of every whole record:
//!
//! ```text
//! field count  u8 F, 1..=MAX_FIELDS
//! widths       F × u8, each > 0; a record is their sum (the stride), at least 2 bytes
//! F times:     mode u8 (0 the plane as it is, 1 a zstd frame of the plane) | len u32 | len bytes
//! tail         raw_len % stride bytes, as they are
//! ```
//!
//! All integers little-endian. Owns only the byte layout: [`GroupedPayload::parse`] checks the
//! structure of untrusted bytes (never panicking, whatever they are) and borrows each plane where
//! it lies, and [`GroupedWriter`] appends a payload plane by plane. Splitting records into planes,
//! compressing and decompressing them is `codec`.

use super::LeReader;

/// Most fields a record may have (and so most planes in a payload).
pub const MAX_FIELDS: usize = 4;
/// Mode byte of a plane stored as it is.
pub const MODE_RAW: u8 = 0;
/// Mode byte of a plane stored as a zstd frame.
pub const MODE_ZSTD: u8 = 1;

/// How one plane is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PlaneMode {
    /// The plane's bytes as they are ([`MODE_RAW`]).
    Raw = MODE_RAW,
    /// A zstd frame of the plane's bytes ([`MODE_ZSTD`]).
    Zstd = MODE_ZSTD,
}

impl PlaneMode {
    /// Decodes a mode byte.
    pub fn from_u8(value: u8) -> Option<PlaneMode> {
        match value {
            MODE_RAW => Some(PlaneMode::Raw),
            MODE_ZSTD => Some(PlaneMode::Zstd),
            _ => None,
        }
    }
}

/// One plane as stored: its mode and its stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane<'a> {
    /// How `bytes` encode the plane.
    pub mode: PlaneMode,
    /// The stored bytes (the plane itself for [`PlaneMode::Raw`]).
    pub bytes: &'a [u8],
}

impl Plane<'_> {
    const EMPTY: Plane<'static> = Plane {
        mode: PlaneMode::Raw,
        bytes: &[],
    };
}

/// Why bytes are not a grouped payload, or a payload cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupedError {
    /// The bytes end inside the field list or the plane table.
    #[error("plane table is truncated")]
    Truncated,
    /// The field count or widths break the rules (1..=MAX_FIELDS fields, widths > 0, stride >= 2).
    #[error("field widths are not valid")]
    BadFields,
    /// A plane's mode byte is neither 0 nor 1.
    #[error("plane {plane} has unknown mode {mode}")]
    UnknownMode {
        /// Index of the plane.
        plane: usize,
        /// The mode byte found.
        mode: u8,
    },
    /// The tail is not shorter than one record.
    #[error("tail of {len} bytes is not shorter than a record of {stride} bytes")]
    LongTail {
        /// Tail length.
        len: usize,
        /// Record length.
        stride: usize,
    },
    /// A plane stored as it is does not hold one field of every record.
    #[error("plane {plane} holds {len} bytes, expected {expected}")]
    PlaneLength {
        /// Index of the plane.
        plane: usize,
        /// Bytes stored.
        len: usize,
        /// Bytes the decoded length implies.
        expected: usize,
    },
    /// The tail does not hold the bytes past the last whole record.
    #[error("tail of {len} bytes, expected {expected}")]
    TailLength {
        /// Bytes in the tail.
        len: usize,
        /// Bytes the decoded length implies.
        expected: usize,
    },
    /// A payload being built has a plane count different from its field count.
    #[error("{planes} planes for {fields} fields")]
    PlaneCount {
        /// Planes given.
        planes: usize,
        /// Fields declared.
        fields: usize,
    },
    /// A plane being written is longer than its u32 length can say.
    #[error("plane of {0} bytes is too long")]
    PlaneTooLong(usize),
}

/// Whether `fields` is a field list a payload may declare: 1..=[`MAX_FIELDS`] widths, each > 0,
/// summing to at least 2.
pub fn valid_fields(fields: &[u8]) -> bool {
    (1..=MAX_FIELDS).contains(&fields.len()) && fields.iter().all(|&w| w > 0) && stride(fields) >= 2
}

/// The length of one record: the sum of the field widths.
pub fn stride(fields: &[u8]) -> usize {
    fields.iter().map(|&w| usize::from(w)).sum()
}

/// A grouped payload, its planes and tail borrowed from the bytes it was parsed from (or built
/// from). Always structurally valid: valid fields, one plane per field, a tail shorter than a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupedPayload<'a> {
    fields: &'a [u8],
    /// The first `fields.len()` are used; the rest stay [`Plane::EMPTY`].
    planes: [Plane<'a>; MAX_FIELDS],
    tail: &'a [u8],
}

impl<'a> GroupedPayload<'a> {
    /// A payload from its parts, checked like parsed bytes are.
    pub fn new(
        fields: &'a [u8],
        planes: &[Plane<'a>],
        tail: &'a [u8],
    ) -> Result<GroupedPayload<'a>, GroupedError> {
        if !valid_fields(fields) {
            return Err(GroupedError::BadFields);
        }
        if planes.len() != fields.len() {
            return Err(GroupedError::PlaneCount {
                planes: planes.len(),
                fields: fields.len(),
            });
        }
        check_tail(tail, fields)?;
        let mut all = [Plane::EMPTY; MAX_FIELDS];
        all[..planes.len()].copy_from_slice(planes);
        Ok(GroupedPayload {
            fields,
            planes: all,
            tail,
        })
    }

    /// Parses the structure of `payload`: the field list, the plane table and the tail. Checks
    /// everything the bytes alone determine; [`GroupedPayload::records_for`] checks the lengths
    /// against the decoded length. No allocation: planes are borrowed from `payload`.
    pub fn parse(payload: &'a [u8]) -> Result<GroupedPayload<'a>, GroupedError> {
        let mut r = LeReader::new(payload);
        let count = usize::from(r.u8().ok_or(GroupedError::Truncated)?);
        if !(1..=MAX_FIELDS).contains(&count) {
            return Err(GroupedError::BadFields);
        }
        let fields = r.take(count).ok_or(GroupedError::Truncated)?;
        if !valid_fields(fields) {
            return Err(GroupedError::BadFields);
        }
        let mut planes = [Plane::EMPTY; MAX_FIELDS];
        for (index, plane) in planes[..count].iter_mut().enumerate() {
            let mode = r.u8().ok_or(GroupedError::Truncated)?;
            let mode =
                PlaneMode::from_u8(mode).ok_or(GroupedError::UnknownMode { plane: index, mode })?;
            let len = usize::try_from(r.u32().ok_or(GroupedError::Truncated)?)
                .map_err(|_| GroupedError::Truncated)?;
            let bytes = r.take(len).ok_or(GroupedError::Truncated)?;
            *plane = Plane { mode, bytes };
        }
        let tail = r.rest();
        check_tail(tail, fields)?;
        Ok(GroupedPayload {
            fields,
            planes,
            tail,
        })
    }

    /// The field widths of a record.
    pub fn fields(&self) -> &'a [u8] {
        self.fields
    }

    /// One plane per field, in field order.
    pub fn planes(&self) -> &[Plane<'a>] {
        &self.planes[..self.fields.len()]
    }

    /// The bytes after the last whole record.
    pub fn tail(&self) -> &'a [u8] {
        self.tail
    }

    /// The length of one record.
    pub fn stride(&self) -> usize {
        stride(self.fields)
    }

    /// Checks the payload against the decoded length `raw_len` (from the record header) and
    /// returns the number of whole records: the tail must be `raw_len % stride` bytes and every
    /// plane stored as it is must hold one field of every record. (The decoded length of a zstd
    /// plane is checked by whoever decompresses it.)
    pub fn records_for(&self, raw_len: usize) -> Result<usize, GroupedError> {
        let stride = self.stride();
        let records = raw_len / stride;
        let expected = raw_len - records * stride;
        if self.tail.len() != expected {
            return Err(GroupedError::TailLength {
                len: self.tail.len(),
                expected,
            });
        }
        for (index, (plane, &width)) in self.planes().iter().zip(self.fields).enumerate() {
            let expected = records * usize::from(width);
            if plane.mode == PlaneMode::Raw && plane.bytes.len() != expected {
                return Err(GroupedError::PlaneLength {
                    plane: index,
                    len: plane.bytes.len(),
                    expected,
                });
            }
        }
        Ok(records)
    }

    /// Length of the encoding.
    pub fn encoded_len(&self) -> usize {
        let table: usize = self.planes().iter().map(|p| 5 + p.bytes.len()).sum();
        1 + self.fields.len() + table + self.tail.len()
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), GroupedError> {
        let mut writer = GroupedWriter::new(out, self.fields)?;
        for plane in self.planes() {
            writer.plane(plane.mode, plane.bytes)?;
        }
        writer.finish(self.tail)
    }

    /// The encoding.
    pub fn encode(&self) -> Result<Vec<u8>, GroupedError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

fn check_tail(tail: &[u8], fields: &[u8]) -> Result<(), GroupedError> {
    let stride = stride(fields);
    if tail.len() >= stride {
        return Err(GroupedError::LongTail {
            len: tail.len(),
            stride,
        });
    }
    Ok(())
}

/// Appends a grouped payload to a buffer plane by plane, so each plane can be written as soon as
/// it is compressed. Call [`GroupedWriter::plane`] once per field, then [`GroupedWriter::finish`].
/// After an error the bytes appended so far are not a payload; discard them.
#[derive(Debug)]
pub struct GroupedWriter<'o> {
    out: &'o mut Vec<u8>,
    fields: usize,
    stride: usize,
    written: usize,
}

impl<'o> GroupedWriter<'o> {
    /// Starts a payload of records with `fields`: appends the field count and widths.
    pub fn new(out: &'o mut Vec<u8>, fields: &[u8]) -> Result<GroupedWriter<'o>, GroupedError> {
        if !valid_fields(fields) {
            return Err(GroupedError::BadFields);
        }
        out.push(fields.len() as u8);
        out.extend_from_slice(fields);
        Ok(GroupedWriter {
            out,
            fields: fields.len(),
            stride: stride(fields),
            written: 0,
        })
    }

    /// Appends the next plane's table entry and bytes.
    pub fn plane(&mut self, mode: PlaneMode, bytes: &[u8]) -> Result<(), GroupedError> {
        if self.written == self.fields {
            return Err(GroupedError::PlaneCount {
                planes: self.written + 1,
                fields: self.fields,
            });
        }
        let len =
            u32::try_from(bytes.len()).map_err(|_| GroupedError::PlaneTooLong(bytes.len()))?;
        self.out.push(mode as u8);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(bytes);
        self.written += 1;
        Ok(())
    }

    /// Appends the tail (the bytes after the last whole record), completing the payload.
    pub fn finish(self, tail: &[u8]) -> Result<(), GroupedError> {
        if self.written != self.fields {
            return Err(GroupedError::PlaneCount {
                planes: self.written,
                fields: self.fields,
            });
        }
        if tail.len() >= self.stride {
            return Err(GroupedError::LongTail {
                len: tail.len(),
                stride: self.stride,
            });
        }
        self.out.extend_from_slice(tail);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::unhex;
    use proptest::prelude::*;

    /// Q8_0-like records of 2 + 4 bytes: two whole records and a 3-byte tail; the first plane
    /// stored as it is, the second marked zstd (the layout does not look inside a frame).
    const GOLDEN: &str = "
        02                      # field count
        02 04                   # widths: stride 6
        00 04000000 a1a2b1b2    # plane 0: raw, 4 bytes
        01 03000000 c0ffee      # plane 1: zstd, 3 bytes
        d1d2d3                  # tail
    ";

    fn golden() -> GroupedPayload<'static> {
        GroupedPayload::new(
            &[2, 4],
            &[
                Plane {
                    mode: PlaneMode::Raw,
                    bytes: &[0xa1, 0xa2, 0xb1, 0xb2],
                },
                Plane {
                    mode: PlaneMode::Zstd,
                    bytes: &[0xc0, 0xff, 0xee],
                },
            ],
            &[0xd1, 0xd2, 0xd3],
        )
        .unwrap()
    }

    #[test]
    fn golden_bytes() {
        let bytes = unhex(GOLDEN);
        let payload = golden();
        assert_eq!(payload.encode().unwrap(), bytes);
        assert_eq!(payload.encoded_len(), bytes.len());
        let parsed = GroupedPayload::parse(&bytes).unwrap();
        assert_eq!(parsed, payload);
        assert_eq!(parsed.fields(), [2, 4]);
        assert_eq!(parsed.planes()[1].mode, PlaneMode::Zstd);
        assert_eq!(parsed.tail(), [0xd1, 0xd2, 0xd3]);
        // 2 records of 6 bytes and a 3-byte tail.
        assert_eq!(parsed.records_for(15), Ok(2));
        assert_eq!(
            parsed.records_for(14),
            Err(GroupedError::TailLength {
                len: 3,
                expected: 2
            })
        );
        assert_eq!(
            parsed.records_for(21),
            Err(GroupedError::PlaneLength {
                plane: 0,
                len: 4,
                expected: 6
            })
        );
    }

    #[test]
    fn damaged_tables_are_rejected() {
        let bytes = unhex(GOLDEN);
        let with = |at: usize, value: u8| {
            let mut damaged = bytes.clone();
            damaged[at] = value;
            GroupedPayload::parse(&damaged).map(|_| ())
        };
        assert_eq!(with(0, 0), Err(GroupedError::BadFields));
        assert_eq!(with(0, 5), Err(GroupedError::BadFields));
        assert_eq!(with(0, 3), Err(GroupedError::BadFields));
        assert_eq!(
            with(0, 1),
            Err(GroupedError::UnknownMode { plane: 0, mode: 4 })
        );
        assert_eq!(with(1, 0), Err(GroupedError::BadFields));
        assert_eq!(
            with(3, 2),
            Err(GroupedError::UnknownMode { plane: 0, mode: 2 })
        );
        assert_eq!(with(4, 0xff), Err(GroupedError::Truncated));
        assert_eq!(with(7, 0xff), Err(GroupedError::Truncated));
        for len in 0..bytes.len() - 3 {
            assert_eq!(
                GroupedPayload::parse(&bytes[..len]).map(|_| ()),
                Err(GroupedError::Truncated),
                "{len} bytes"
            );
        }
        let mut long_tail = bytes.clone();
        long_tail.extend_from_slice(&[0; 3]);
        assert_eq!(
            GroupedPayload::parse(&long_tail).map(|_| ()),
            Err(GroupedError::LongTail { len: 6, stride: 6 })
        );
        assert_eq!(
            GroupedPayload::parse(&[1, 1, 0, 0, 0, 0, 0]).map(|_| ()),
            Err(GroupedError::BadFields),
            "a 1-byte stride"
        );
    }

    #[test]
    fn the_writer_enforces_the_layout() {
        let mut out = Vec::new();
        assert_eq!(
            GroupedWriter::new(&mut out, &[1, 0]).map(|_| ()),
            Err(GroupedError::BadFields)
        );
        let mut writer = GroupedWriter::new(&mut out, &[1, 1]).unwrap();
        writer.plane(PlaneMode::Raw, &[1]).unwrap();
        assert_eq!(
            GroupedWriter::finish(writer, &[]),
            Err(GroupedError::PlaneCount {
                planes: 1,
                fields: 2
            })
        );
        let mut out = Vec::new();
        let mut writer = GroupedWriter::new(&mut out, &[1, 1]).unwrap();
        writer.plane(PlaneMode::Raw, &[1]).unwrap();
        writer.plane(PlaneMode::Raw, &[2]).unwrap();
        assert_eq!(
            writer.plane(PlaneMode::Raw, &[3]),
            Err(GroupedError::PlaneCount {
                planes: 3,
                fields: 2
            })
        );
        assert_eq!(
            writer.finish(&[9, 9]),
            Err(GroupedError::LongTail { len: 2, stride: 2 })
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64), raw_len in 0usize..100) {
            if let Ok(payload) = GroupedPayload::parse(&bytes) {
                let _ = payload.records_for(raw_len);
                prop_assert_eq!(payload.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn round_trip(
            fields in prop::collection::vec(1u8..40, 1..=MAX_FIELDS),
            planes in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..50)), MAX_FIELDS),
            tail in prop::collection::vec(any::<u8>(), 0..50),
        ) {
            prop_assume!(stride(&fields) >= 2);
            let tail = &tail[..tail.len() % stride(&fields)];
            let planes: Vec<Plane> = planes[..fields.len()]
                .iter()
                .map(|(zstd, bytes)| Plane {
                    mode: if *zstd { PlaneMode::Zstd } else { PlaneMode::Raw },
                    bytes,
                })
                .collect();
            let payload = GroupedPayload::new(&fields, &planes, tail).unwrap();
            let bytes = payload.encode().unwrap();
            prop_assert_eq!(bytes.len(), payload.encoded_len());
            prop_assert_eq!(GroupedPayload::parse(&bytes).unwrap(), payload);
        }
    }
}
