//! Release signing with an Ed25519 key held in a PKCS#11 token (an HSM, a smart card, SoftHSM).
//!
//! Owns [`Pkcs11Signer`]: loading a PKCS#11 module, finding ([`open`]) or creating ([`generate`])
//! a labelled Ed25519 key pair on one of its tokens, logging in, and turning the token's raw
//! Ed25519 signatures into minisign's signature text (algorithm `ED`: Ed25519 over the
//! BLAKE2b-512 prehash of the data, plus the global signature over the trusted comment).
//! The private key never leaves the token; this module only sees the public key.
//!
//! It does not own verification, trust policy, key-id semantics or where signatures are stored;
//! those belong to the parent module. Everything a token returns is treated as untrusted: lengths
//! are checked, and every signature is verified with the public key before it is handed out.
//!
//! PKCS#11 login state belongs to the application, not to a session: while another
//! [`Pkcs11Signer`] of this process is logged in to the same token, a further [`open`] of that
//! token is already authenticated and the PIN it was given cannot be checked again.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use blake2::{Blake2b512, Digest};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ct_codecs::{Base64, Encoder};

use super::{KeyId, Signer, TrustError};

/// Domain separation for deriving a [`KeyId`] from a token-held public key.
const KEY_ID_DOMAIN: &[u8] = b"modelfs-pkcs11-keyid";

/// `CKA_EC_PARAMS` for Ed25519 as the DER of the OID id-Ed25519 (1.3.101.112), per PKCS#11 3.0.
const EC_PARAMS_ED25519_OID: &[u8] = &[0x06, 0x03, 0x2B, 0x65, 0x70];

/// `CKA_EC_PARAMS` for Ed25519 as the DER PrintableString "edwards25519" (PKCS#11 3.0's other
/// form, the one older SoftHSM releases document).
const EC_PARAMS_ED25519_NAME: &[u8] = &[
    0x13, 0x0C, b'e', b'd', b'w', b'a', b'r', b'd', b's', b'2', b'5', b'5', b'1', b'9',
];

/// An Ed25519 key pair on a PKCS#11 token, logged in and ready to make minisign signatures.
///
/// Made by [`open`] or [`generate`]. Holds the module context, one logged-in session and the
/// private key's handle; dropping it closes the session (the token logs the application out when
/// its last session closes). A session may not be shared between threads, so this type is `Send`
/// but not `Sync`.
pub struct Pkcs11Signer {
    /// The loaded, initialized module (kept alive for as long as the session).
    _ctx: Pkcs11,
    /// The logged-in session every signature is made in.
    session: Session,
    /// The slot holding the token, for messages.
    slot: Slot,
    /// The token's label, for messages.
    token: String,
    /// The key pair's `CKA_LABEL`.
    label: String,
    /// The private key, which never leaves the token.
    private_key: ObjectHandle,
    /// The raw Ed25519 public key read from the public key object's `CKA_EC_POINT`.
    public_key: [u8; 32],
    /// Derived from `public_key`; see [`key_id_for`].
    key_id: KeyId,
    /// The module's path, for errors.
    module: PathBuf,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("module", &self.module)
            .field("slot", &self.slot.id())
            .field("token", &self.token)
            .field("label", &self.label)
            .field("key_id", &key_id_hex(self.key_id))
            .finish_non_exhaustive()
    }
}

/// Opens the Ed25519 key pair labelled `label` on a token of the PKCS#11 module at `module`,
/// logging in as the normal user with `pin`.
///
/// Every slot with an initialized token is searched, in the module's slot order, for an object
/// with that `CKA_LABEL` that is visible without logging in (normally the public key); the first
/// such token where, after login, a private key with that label exists is used. If no token shows
/// the label before login and the module has exactly one initialized token, that token is logged
/// in to and searched (so a token that hides its public keys still works); the PIN is never tried
/// on more tokens than that. The token must hold exactly one private key (`CKO_PRIVATE_KEY`,
/// `CKK_EC_EDWARDS`) and one public key (`CKO_PUBLIC_KEY`) with that label, and the public key's
/// `CKA_EC_POINT` must be a 32-byte Ed25519 point (raw, or DER-wrapped in an OCTET STRING).
///
/// # Errors
/// [`TrustError::Pkcs11`] with a one-line reason: the module cannot be loaded or initialized, no
/// token holds a key with that label, wrong or locked PIN, the key is not an Ed25519 key, the key
/// is ambiguous, or the token failed.
pub fn open(module: &Path, label: &str, pin: &str) -> Result<Pkcs11Signer, TrustError> {
    let ctx = load(module)?;
    let slots = initialized_slots(&ctx, module)?;
    let mut candidates = Vec::new();
    for &slot in &slots {
        if label_visible(&ctx, slot, label, module)? {
            candidates.push(slot);
        }
    }
    if candidates.is_empty() && slots.len() == 1 {
        candidates.push(slots[0]);
    }
    for slot in candidates {
        let token = token_label(&ctx, slot, module)?;
        let session = open_session(&ctx, slot, &token, false, module)?;
        login(&session, pin, &token, module)?;
        if let Some(private_key) = find_private_key(&session, label, &token, module)? {
            let public_key = find_public_key(&session, label, &token, module)?;
            let key = (private_key, public_key);
            return Ok(signer(ctx, session, slot, token, label, key, module));
        }
    }
    Err(error(
        module,
        format!("no token holds a key labelled {label:?}"),
    ))
}

/// Generates a new Ed25519 key pair labelled `label` on the first initialized token of the
/// PKCS#11 module at `module`, logging in as the normal user with `pin`, and returns it opened as
/// by [`open`].
///
/// Both halves are token objects (`CKA_TOKEN`). The private key is private, sensitive, never
/// extractable and may only sign; the public key is public (so [`open`] can find the token before
/// logging in) and may only verify. Mechanism `CKM_EC_EDWARDS_KEY_PAIR_GEN`, with `CKA_EC_PARAMS`
/// the DER OID 1.3.101.112, or the DER PrintableString "edwards25519" if the token rejects the OID.
///
/// # Errors
/// [`TrustError::Pkcs11`]: as for [`open`]; also if any token already shows an object with that
/// label or the chosen token holds a private key with it (labels must stay unique), if no token is
/// initialized, or if the token cannot make Ed25519 keys.
pub fn generate(module: &Path, label: &str, pin: &str) -> Result<Pkcs11Signer, TrustError> {
    let ctx = load(module)?;
    let slots = initialized_slots(&ctx, module)?;
    for &slot in &slots {
        if label_visible(&ctx, slot, label, module)? {
            let token = token_label(&ctx, slot, module)?;
            return Err(error(
                module,
                format!("token {token:?} already holds a key labelled {label:?}"),
            ));
        }
    }
    let Some(&slot) = slots.first() else {
        return Err(error(module, "no initialized token is present"));
    };
    let token = token_label(&ctx, slot, module)?;
    let session = open_session(&ctx, slot, &token, true, module)?;
    login(&session, pin, &token, module)?;
    let existing = find(
        &session,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
        module,
    )?;
    if !existing.is_empty() {
        return Err(error(
            module,
            format!("token {token:?} already holds a key labelled {label:?}"),
        ));
    }

    let mut generated = generate_pair(&session, label, EC_PARAMS_ED25519_OID);
    if let Err(CkError::Pkcs11(
        RvError::CurveNotSupported
        | RvError::DomainParamsInvalid
        | RvError::AttributeValueInvalid
        | RvError::TemplateInconsistent,
        _,
    )) = generated
    {
        generated = generate_pair(&session, label, EC_PARAMS_ED25519_NAME);
    }
    let (public_key, private_key) = match generated {
        Ok(pair) => pair,
        Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => {
            return Err(error(
                module,
                format!(
                    "token {token:?} cannot generate Ed25519 keys (no CKM_EC_EDWARDS_KEY_PAIR_GEN)"
                ),
            ));
        }
        Err(e) => {
            return Err(error(
                module,
                format!(
                    "generating an Ed25519 key pair on token {token:?}: {}",
                    describe(&e)
                ),
            ));
        }
    };
    match read_public_key(&session, public_key, label, module) {
        Ok(raw) => Ok(signer(
            ctx,
            session,
            slot,
            token,
            label,
            (private_key, raw),
            module,
        )),
        Err(e) => {
            // Do not leave a half-usable pair behind to block the next attempt.
            let _ = session.destroy_object(private_key);
            let _ = session.destroy_object(public_key);
            Err(e)
        }
    }
}

/// One `C_GenerateKeyPair` for an Ed25519 pair labelled `label`; returns (public, private).
fn generate_pair(
    session: &Session,
    label: &str,
    ec_params: &[u8],
) -> Result<(ObjectHandle, ObjectHandle), CkError> {
    let public_template = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::EcParams(ec_params.to_vec()),
    ];
    let private_template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    session.generate_key_pair(
        &Mechanism::EccEdwardsKeyPairGen,
        &public_template,
        &private_template,
    )
}

/// The [`KeyId`] of a token-held Ed25519 public key: the first 8 bytes of
/// BLAKE3(`"modelfs-pkcs11-keyid"` ‖ public key). Deterministic, so the same key always has the
/// same id, whichever token or slot it is opened from.
pub fn key_id_for(public_key: &[u8; 32]) -> KeyId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(KEY_ID_DOMAIN);
    hasher.update(public_key);
    let hash = hasher.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&hash.as_bytes()[..8]);
    KeyId(id)
}

impl Pkcs11Signer {
    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// The key pair's `CKA_LABEL`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The label of the token holding the key.
    pub fn token_label(&self) -> &str {
        &self.token
    }

    /// One Ed25519 signature by the token over `message` (`CKM_EDDSA`, no parameters: pure
    /// Ed25519), checked to be 64 bytes.
    fn eddsa(&self, message: &[u8]) -> Result<[u8; 64], TrustError> {
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let signature = self
            .session
            .sign(&mechanism, self.private_key, message)
            .map_err(|e| {
                error(
                    &self.module,
                    format!(
                        "signing with key {:?} on token {:?}: {}",
                        self.label,
                        self.token,
                        describe(&e)
                    ),
                )
            })?;
        signature.as_slice().try_into().map_err(|_| {
            error(
                &self.module,
                format!(
                    "token {:?} returned a {}-byte signature for key {:?}; Ed25519 signatures are 64 bytes",
                    self.token,
                    signature.len(),
                    self.label
                ),
            )
        })
    }
}

impl Signer for Pkcs11Signer {
    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn public_key_text(&self) -> String {
        let mut bytes = Vec::with_capacity(2 + 8 + 32);
        bytes.extend_from_slice(b"Ed");
        bytes.extend_from_slice(&self.key_id.0);
        bytes.extend_from_slice(&self.public_key);
        format!(
            "untrusted comment: modelfs PKCS#11 public key {}\n{}\n",
            key_id_hex(self.key_id),
            base64(&bytes)
        )
    }

    fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<String, TrustError> {
        // minisign keeps the trusted comment on one line and trims it when parsing, so anything
        // else would produce a signature that never verifies. Tabs are fine (minisign's own
        // default comment is `timestamp:<t>\tfile:<name>\thashed`).
        if trusted_comment.chars().any(|c| c.is_control() && c != '\t')
            || trusted_comment.trim() != trusted_comment
        {
            return Err(error(
                &self.module,
                "a trusted comment must be one line, without control characters other than tabs or leading/trailing whitespace",
            ));
        }
        let prehash = Blake2b512::digest(data);
        let signature = self.eddsa(prehash.as_slice())?;
        let mut signed_comment = Vec::with_capacity(64 + trusted_comment.len());
        signed_comment.extend_from_slice(&signature);
        signed_comment.extend_from_slice(trusted_comment.as_bytes());
        let global_signature = self.eddsa(&signed_comment)?;

        let mut signature_line = Vec::with_capacity(2 + 8 + 64);
        signature_line.extend_from_slice(b"ED");
        signature_line.extend_from_slice(&self.key_id.0);
        signature_line.extend_from_slice(&signature);
        let text = format!(
            "untrusted comment: signature from modelfs PKCS#11 key {}\n{}\ntrusted comment: {}\n{}\n",
            key_id_hex(self.key_id),
            base64(&signature_line),
            trusted_comment,
            base64(&global_signature)
        );

        // The token is not trusted to have signed with the key whose public half we read (or to
        // have signed correctly at all): check the result as any verifier will.
        let mut public_key = Vec::with_capacity(2 + 8 + 32);
        public_key.extend_from_slice(b"Ed");
        public_key.extend_from_slice(&self.key_id.0);
        public_key.extend_from_slice(&self.public_key);
        let verified = minisign::PublicKey::from_bytes(&public_key).and_then(|pk| {
            let signature_box = minisign::SignatureBox::from_string(&text)?;
            minisign::verify(&pk, &signature_box, Cursor::new(data), true, false, false)
        });
        if let Err(e) = verified {
            return Err(error(
                &self.module,
                format!(
                    "token {:?} made a signature with key {:?} that does not verify with its public key ({e}); is the key pair mismatched?",
                    self.token, self.label
                ),
            ));
        }
        Ok(text)
    }
}

/// Loads and initializes the module. A module already initialized by this process (another
/// signer) is fine: PKCS#11 allows one initialization per process, shared by all its users.
fn load(module: &Path) -> Result<Pkcs11, TrustError> {
    let ctx = Pkcs11::new(module)
        .map_err(|e| error(module, format!("cannot load the module: {}", describe(&e))))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(error(
            module,
            format!("cannot initialize the module: {}", describe(&e)),
        )),
    }
}

/// The slots holding an initialized token, in the module's order.
fn initialized_slots(ctx: &Pkcs11, module: &Path) -> Result<Vec<Slot>, TrustError> {
    ctx.get_slots_with_initialized_token()
        .map_err(|e| error(module, format!("listing slots: {}", describe(&e))))
}

/// The token's label, trimmed of its blank padding.
fn token_label(ctx: &Pkcs11, slot: Slot, module: &Path) -> Result<String, TrustError> {
    let info = ctx.get_token_info(slot).map_err(|e| {
        error(
            module,
            format!("reading the token in slot {}: {}", slot.id(), describe(&e)),
        )
    })?;
    Ok(info.label().trim().to_string())
}

/// Whether the token in `slot` shows an object labelled `label` without logging in.
fn label_visible(ctx: &Pkcs11, slot: Slot, label: &str, module: &Path) -> Result<bool, TrustError> {
    let session = ctx.open_ro_session(slot).map_err(|e| {
        error(
            module,
            format!(
                "opening a session on the token in slot {}: {}",
                slot.id(),
                describe(&e)
            ),
        )
    })?;
    let found = find(
        &session,
        &[Attribute::Label(label.as_bytes().to_vec())],
        module,
    )?;
    Ok(!found.is_empty())
}

/// Opens a read-write session, or (unless `need_write`) a read-only one if the token refuses.
fn open_session(
    ctx: &Pkcs11,
    slot: Slot,
    token: &str,
    need_write: bool,
    module: &Path,
) -> Result<Session, TrustError> {
    match ctx.open_rw_session(slot) {
        Ok(session) => Ok(session),
        Err(CkError::Pkcs11(RvError::TokenWriteProtected, _)) if need_write => Err(error(
            module,
            format!("token {token:?} is write-protected; cannot store a new key on it"),
        )),
        Err(e) if need_write => Err(error(
            module,
            format!(
                "opening a read-write session on token {token:?}: {}",
                describe(&e)
            ),
        )),
        Err(_) => ctx.open_ro_session(slot).map_err(|e| {
            error(
                module,
                format!("opening a session on token {token:?}: {}", describe(&e)),
            )
        }),
    }
}

/// Logs the normal user in. Already logged in (by another session of this process) is fine.
fn login(session: &Session, pin: &str, token: &str, module: &Path) -> Result<(), TrustError> {
    let pin = AuthPin::from(pin);
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        )) => Err(error(module, format!("wrong PIN for token {token:?}"))),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(error(
            module,
            format!("the user PIN of token {token:?} is locked"),
        )),
        Err(CkError::Pkcs11(RvError::PinExpired, _)) => Err(error(
            module,
            format!("the user PIN of token {token:?} has expired; change it first"),
        )),
        Err(CkError::Pkcs11(RvError::UserPinNotInitialized, _)) => Err(error(
            module,
            format!("token {token:?} has no user PIN set"),
        )),
        Err(e) => Err(error(
            module,
            format!("logging in to token {token:?}: {}", describe(&e)),
        )),
    }
}

/// The private key labelled `label`, if there is one; it must be the only one and be Ed25519.
fn find_private_key(
    session: &Session,
    label: &str,
    token: &str,
    module: &Path,
) -> Result<Option<ObjectHandle>, TrustError> {
    let keys = find(
        session,
        &[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
        module,
    )?;
    let key = match keys.as_slice() {
        [] => return Ok(None),
        [key] => *key,
        more => {
            return Err(error(
                module,
                format!(
                    "token {token:?} holds {} private keys labelled {label:?}; labels must be unique",
                    more.len()
                ),
            ));
        }
    };
    let attributes = attributes(
        session,
        key,
        &[AttributeType::KeyType, AttributeType::AlwaysAuthenticate],
        label,
        module,
    )?;
    let mut is_eddsa = false;
    for attribute in &attributes {
        match attribute {
            Attribute::KeyType(kind) => is_eddsa = *kind == KeyType::EC_EDWARDS,
            Attribute::AlwaysAuthenticate(true) => {
                return Err(error(
                    module,
                    format!(
                        "key {label:?} requires a PIN for every signature (CKA_ALWAYS_AUTHENTICATE), which is not supported"
                    ),
                ));
            }
            _ => {}
        }
    }
    if !is_eddsa {
        return Err(error(
            module,
            format!("key {label:?} is not an Ed25519 key"),
        ));
    }
    Ok(Some(key))
}

/// The raw public key of the (only) public key object labelled `label`.
fn find_public_key(
    session: &Session,
    label: &str,
    token: &str,
    module: &Path,
) -> Result<[u8; 32], TrustError> {
    let keys = find(
        session,
        &[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
        module,
    )?;
    match keys.as_slice() {
        [] => Err(error(
            module,
            format!(
                "token {token:?} holds the private key {label:?} but no public key with that label"
            ),
        )),
        [key] => read_public_key(session, *key, label, module),
        more => Err(error(
            module,
            format!(
                "token {token:?} holds {} public keys labelled {label:?}; labels must be unique",
                more.len()
            ),
        )),
    }
}

/// Reads an Ed25519 public key object's `CKA_EC_POINT`: 32 raw bytes, or those bytes in a DER
/// OCTET STRING (`04 20` ‖ 32 bytes). Anything else (Ed448, a Weierstrass point) is refused.
fn read_public_key(
    session: &Session,
    key: ObjectHandle,
    label: &str,
    module: &Path,
) -> Result<[u8; 32], TrustError> {
    let attributes = attributes(
        session,
        key,
        &[AttributeType::KeyType, AttributeType::EcPoint],
        label,
        module,
    )?;
    let mut is_eddsa = false;
    let mut point = None;
    for attribute in attributes {
        match attribute {
            Attribute::KeyType(kind) => is_eddsa = kind == KeyType::EC_EDWARDS,
            Attribute::EcPoint(bytes) => point = Some(bytes),
            _ => {}
        }
    }
    let raw = match point.as_deref() {
        Some(raw) if raw.len() == 32 => Some(raw),
        Some([0x04, 0x20, raw @ ..]) if raw.len() == 32 => Some(raw),
        _ => None,
    };
    match raw.and_then(|raw| <[u8; 32]>::try_from(raw).ok()) {
        Some(public_key) if is_eddsa => Ok(public_key),
        _ => Err(error(
            module,
            format!("key {label:?} is not an Ed25519 key"),
        )),
    }
}

/// The signer, once the session is logged in and both halves of the key (the private key's
/// handle, the raw public key) are known.
fn signer(
    ctx: Pkcs11,
    session: Session,
    slot: Slot,
    token: String,
    label: &str,
    (private_key, public_key): (ObjectHandle, [u8; 32]),
    module: &Path,
) -> Pkcs11Signer {
    Pkcs11Signer {
        _ctx: ctx,
        session,
        slot,
        token,
        label: label.to_string(),
        private_key,
        public_key,
        key_id: key_id_for(&public_key),
        module: module.to_path_buf(),
    }
}

/// `C_FindObjects` with the given template.
fn find(
    session: &Session,
    template: &[Attribute],
    module: &Path,
) -> Result<Vec<ObjectHandle>, TrustError> {
    session
        .find_objects(template)
        .map_err(|e| error(module, format!("searching the token: {}", describe(&e))))
}

/// `C_GetAttributeValue`; attributes the token does not have are left out of the result.
fn attributes(
    session: &Session,
    object: ObjectHandle,
    types: &[AttributeType],
    label: &str,
    module: &Path,
) -> Result<Vec<Attribute>, TrustError> {
    session
        .get_attributes(object, types)
        .map_err(|e| error(module, format!("reading key {label:?}: {}", describe(&e))))
}

/// A key id as minisign prints one: the 8 bytes as a little-endian integer in 16 upper-case hex
/// digits.
fn key_id_hex(id: KeyId) -> String {
    format!("{:016X}", u64::from_le_bytes(id.0))
}

/// Standard, padded base64, as in minisign files.
fn base64(bytes: &[u8]) -> String {
    // Only fails if the length overflows, which a few hundred bytes cannot.
    Base64::encode_to_string(bytes).unwrap_or_default()
}

/// A cryptoki error in one line: `C_Login returned PinIncorrect` rather than the spec's paragraph.
fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("C_{function:?} returned {rv:?}"),
        other => other.to_string(),
    }
}

/// A [`TrustError::Pkcs11`] for `module`.
fn error(module: &Path, reason: impl Into<String>) -> TrustError {
    TrustError::Pkcs11 {
        module: module.to_path_buf(),
        reason: reason.into(),
    }
}
