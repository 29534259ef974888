//! An entry of `[services.http]`'s allow list: `scheme://host:port`, read
//! from what the operator wrote, and compared with where a plugin's request
//! goes.

/// `scheme://host:port`, the unit of the outbound allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    pub https: bool,
    /// Lower case; an IPv6 address keeps its brackets.
    pub host: String,
    pub port: u16,
}

impl AllowedOrigin {
    /// Reads an allow-list entry: `https://api.example.com`,
    /// `http://127.0.0.1:8080`; the port defaults to the scheme's.
    pub fn parse(entry: &str) -> Result<AllowedOrigin, String> {
        let hint = "write it as scheme://host or scheme://host:port, with http or https";
        // An entry may carry a password; the messages show it without one.
        let shown = match entry.rsplit_once('@') {
            Some((before, after)) => match before.split_once("://") {
                Some((scheme, _credentials)) => format!("{scheme}://...@{after}"),
                None => format!("...@{after}"),
            },
            None => entry.to_owned(),
        };
        let uri: http::Uri = entry
            .parse()
            .map_err(|_| format!("the allowed origin {shown:?} is not a URL; {hint}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "the allowed origin {shown:?} is not http or https; {hint}"
                ));
            }
        };
        let Some(authority) = uri.authority() else {
            return Err(format!(
                "the allowed origin {shown:?} names no host; {hint}"
            ));
        };
        if authority.as_str().contains('@') {
            return Err(format!(
                "the allowed origin {shown:?} carries a user name or password; put credentials in [services.secrets] and {hint}"
            ));
        }
        if authority.host().is_empty() || authority.host().contains('*') {
            return Err(format!(
                "the allowed origin {shown:?} names no single host (wildcards are not read); {hint}"
            ));
        }
        if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
            return Err(format!(
                "the allowed origin {shown:?} has a path; origins allow every path of a host, so {hint}"
            ));
        }
        Ok(AllowedOrigin::new(
            https,
            authority.host(),
            authority.port_u16(),
        ))
    }

    /// The origin of a request to `host`, on `port` or the scheme's own.
    pub fn new(https: bool, host: &str, port: Option<u16>) -> AllowedOrigin {
        AllowedOrigin {
            https,
            host: host.to_ascii_lowercase(),
            port: port.unwrap_or(if https { 443 } else { 80 }),
        }
    }
}

impl std::fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}
