//! What an item is, by memcached's rules: the key syntax, the exptime
//! convention, the size formula charged to the memory budget, the storage
//! command modes and their outcomes, and [`NewItem`], the buffer a storage
//! command hands to the [`Store`](super::Store). Nothing here locks or
//! touches a shard; the shard and the protocol both build on these types.

/// The longest key memcached accepts.
pub const KEY_MAX_LENGTH: usize = 250;

/// exptimes up to this many seconds (30 days) are relative to now; larger
/// ones are absolute unix times (memcached's `REALTIME_MAXDELTA`).
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// memcached's per-item header on a 64-bit build (`sizeof(item)`).
const ITEM_HEADER: usize = 48;
/// The stored CAS unique.
const ITEM_CAS: usize = 8;

/// How many bytes an item counts for: memcached's `ITEM_ntotal` with CAS on,
/// i.e. header + key + NUL + flags (only if non-zero) + value + `\r\n` + CAS.
///
/// The same number is checked against the item size limit (so the largest
/// storable value is exactly memcached's) and charged to the memory budget
/// (so `bytes` and `limit_maxbytes` mean what they mean in memcached).
///
/// ```
/// use examples::memcached::item_size;
/// assert_eq!(item_size(3, 0, 5), 48 + 4 + 7 + 8);
/// assert_eq!(item_size(3, 1, 5), 48 + 4 + 4 + 7 + 8);
/// ```
pub fn item_size(key_len: usize, flags: u32, value_len: usize) -> usize {
    let suffix = if flags == 0 { 0 } else { 4 };
    ITEM_HEADER
        .saturating_add(key_len)
        .saturating_add(1 + suffix)
        .saturating_add(value_len)
        .saturating_add(2 + ITEM_CAS)
}

/// Whether `key` is a key memcached's text protocol can carry: 1 to 250
/// bytes, none of them a space, a newline or NUL.
///
/// The protocol document asks clients not to send control characters, but
/// memcached only splits lines on spaces and reads keys as C strings, and
/// clients rely on that: `memaslap` puts `0x10` bytes in its keys. So every
/// other byte is accepted, UTF-8 included.
///
/// ```
/// use examples::memcached::is_valid_key;
/// assert!(is_valid_key(b"user:42"));
/// assert!(is_valid_key(b"\x10\x10memaslap"));
/// assert!(!is_valid_key(b"two words"));
/// assert!(!is_valid_key(&[b'k'; 251]));
/// ```
pub fn is_valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= KEY_MAX_LENGTH
        && key.iter().all(|&b| !matches!(b, b' ' | b'\n' | 0))
}

/// Converts a client's exptime into an absolute unix second (0 = never),
/// following memcached's `realtime()`:
///
/// - 0 never expires;
/// - 1 ..= 30 days is relative to `now`;
/// - more than 30 days is an absolute unix time (possibly already past);
/// - negative is already expired.
///
/// An item is expired once `now >= deadline`. "Already expired" is encoded
/// as second 1, which is in the past for any real clock.
///
/// ```
/// use examples::memcached::expiry_deadline;
/// let now = 1_700_000_000;
/// assert_eq!(expiry_deadline(0, now), 0);
/// assert_eq!(expiry_deadline(10, now), now + 10);
/// assert_eq!(expiry_deadline(60 * 60 * 24 * 30 + 1, now), 2_592_001);
/// assert_eq!(expiry_deadline(-1, now), 1);
/// ```
pub fn expiry_deadline(exptime: i64, now: u64) -> u64 {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        1
    } else if exptime > MAX_RELATIVE_EXPTIME {
        exptime as u64
    } else {
        now.saturating_add(exptime as u64)
    }
}

/// What a storage command does when the key exists or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if the key is absent.
    Add,
    /// Store only if the key is present.
    Replace,
    /// Add the data after the present value (flags and exptime are kept).
    Append,
    /// Add the data before the present value (flags and exptime are kept).
    Prepend,
    /// Store only if the present item's CAS unique equals this one.
    Cas(u64),
    /// `ms ... C<unique> I`: as [`Cas`](StoreMode::Cas), and if `unique`
    /// is older than the present item's, store anyway but marked stale,
    /// keeping the present item's expiry and win token.
    CasStale(u64),
}

/// The result of a storage command; each maps to one protocol reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// `STORED`
    Stored,
    /// `NOT_STORED`: add on a present key, replace/append/prepend on a
    /// missing one, or an append that would exceed the item size limit.
    NotStored,
    /// `EXISTS`: cas on an item modified since the client read it.
    Exists,
    /// `NOT_FOUND`: cas on a missing key.
    NotFound,
    /// `SERVER_ERROR out of memory storing object`: the item is larger than
    /// a shard's whole budget.
    OutOfMemory,
}

/// Why incr/decr did not produce a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaError {
    /// The key is absent (`NOT_FOUND`).
    NotFound,
    /// The value is not a decimal u64 (`CLIENT_ERROR cannot increment or
    /// decrement non-numeric value`).
    NonNumeric,
    /// A longer result could not be stored (`SERVER_ERROR out of memory`).
    OutOfMemory,
}

/// A borrowed look at a stored item, valid while its shard is locked.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// The client's opaque flags.
    pub flags: u32,
    /// The CAS unique.
    pub cas: u64,
    /// Absolute unix expiry second, 0 for never.
    pub exptime: u64,
}

/// An item ready to store: key and value in one buffer (the item's only
/// allocation, moved into the store as is), flags and absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    data: Box<[u8]>,
    key_len: u32,
    flags: u32,
    exptime: u64,
}

impl NewItem {
    /// Copies `key` and `value` into a new item; `None` if the key is not
    /// [valid](is_valid_key). `exptime` is absolute (see [`expiry_deadline`]).
    pub fn new(key: &[u8], value: &[u8], flags: u32, exptime: u64) -> Option<Self> {
        if !is_valid_key(key) {
            return None;
        }
        let mut data = Vec::with_capacity(key.len() + value.len());
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        Some(NewItem {
            data: data.into_boxed_slice(),
            key_len: key.len() as u32,
            flags,
            exptime,
        })
    }

    /// Takes a buffer already holding key then value (as the protocol reads
    /// them straight off the wire). `None` if the first `key_len` bytes are
    /// not a valid key.
    pub fn from_buffer(data: Vec<u8>, key_len: usize, flags: u32, exptime: u64) -> Option<Self> {
        if key_len > data.len() || !is_valid_key(&data[..key_len]) {
            return None;
        }
        Some(NewItem {
            data: data.into_boxed_slice(),
            key_len: key_len as u32,
            flags,
            exptime,
        })
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }

    /// [`item_size`] of this item.
    pub fn size(&self) -> usize {
        item_size(self.key_len as usize, self.flags, self.value().len())
    }

    pub(crate) fn into_parts(self) -> (Box<[u8]>, u32, u32, u64) {
        (self.data, self.key_len, self.flags, self.exptime)
    }
}
