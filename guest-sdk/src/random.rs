//! Random values a provisioner hands out, drawn from WASI's `random`, which
//! the host serves from the operating system's cryptographic generator.

/// A password of 32 letters and digits (about 190 bits), as a provisioner
/// gives each user it makes: safe in a URL, a connection string or a shell
/// without quoting.
///
/// ```no_run
/// let password = orizuru_sdk::random::password();
/// assert_eq!(password.len(), 32);
/// ```
pub fn password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const LENGTH: usize = 32;
    let mut password = String::with_capacity(LENGTH);
    while password.len() < LENGTH {
        let bytes = wasip2::random::random::get_random_bytes(64);
        // 248 is the largest multiple of 62 in a byte: no character comes up
        // more often than another.
        for byte in bytes.into_iter().filter(|byte| *byte < 248) {
            if password.len() == LENGTH {
                break;
            }
            password.push(char::from(ALPHABET[usize::from(byte % 62)]));
        }
    }
    password
}
