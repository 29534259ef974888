//! `orizuru template --service ID`: the tsuru manifest of a configured
//! service, for `tsuru service-create manifest.yaml`.

use std::net::IpAddr;
use std::process::ExitCode;

use orizuru::config::{Config, Overrides, ServiceConfig};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: super::ConfiguredService,
    /// The URL tsuru reaches this host at (scheme, host, port, any path
    /// prefix of a proxy in front); default: http:// and the config's `listen`.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The tsuru team responsible for the service; leave it out when the
    /// user running `tsuru service-create` is in one team only.
    #[arg(long, value_name = "TEAM")]
    team: Option<String>,
}

pub fn run(args: Args) -> ExitCode {
    let config = match super::load_config(&args.target.config, &Overrides::default()) {
        Ok(config) => config,
        Err(sentence) => return super::fail(sentence),
    };
    let service =
        match super::pick_service(&config, Some(&args.target.service), &args.target.config) {
            Ok(service) => service,
            Err(sentence) => return super::fail(sentence),
        };
    match manifest(&config, service, &args) {
        Ok(manifest) => {
            print!("{manifest}");
            ExitCode::SUCCESS
        }
        Err(sentence) => super::fail(sentence),
    }
}

/// The manifest, checked by tsuru's rules.
fn manifest(config: &Config, service: &ServiceConfig, args: &Args) -> Result<String, String> {
    // The config already holds ids to tsuru's rule ([a-z][a-z0-9-]*, at most 40).
    if service.password.expose().is_empty() {
        return Err(format!(
            "service \"{}\" has an empty password; tsuru needs one: set password_env (or password) in its [[services]] entry",
            service.id
        ));
    }
    let base = match &args.public_url {
        Some(url) => public_url(url)?,
        None => {
            let listen = config.listen;
            if listen.ip().is_loopback() || listen.ip().is_unspecified() {
                eprintln!(
                    "orizuru: the endpoint uses the config's listen address {listen}, which tsuru's API cannot reach unless it runs on this machine; pass --public-url with the URL tsuru will call"
                );
            }
            let host = match listen.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            };
            format!("http://{host}:{}", listen.port())
        }
    };
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    let mut manifest = format!("id: {}\n", service.id);
    if service.username != service.id {
        manifest.push_str(&format!("username: {}\n", quote(&service.username)));
    }
    manifest.push_str(&format!("password: {}\n", quote(service.password.expose())));
    if let Some(team) = &args.team {
        manifest.push_str(&format!("team: {}\n", quote(team)));
    }
    manifest.push_str(&format!(
        "endpoint:\n  production: {}\nmulti-cluster: false\n",
        quote(&format!("{base}/services/{}", service.id))
    ));
    Ok(manifest)
}

/// An http(s) URL with no query, fragment or credentials, without its trailing slash.
fn public_url(url: &str) -> Result<String, String> {
    let uri: axum::http::Uri = url.parse().map_err(|_| {
        format!("--public-url {url:?} is not a URL; give one like https://orizuru.example.com")
    })?;
    let ok_scheme = matches!(uri.scheme_str(), Some("http" | "https"));
    if !ok_scheme || uri.host().is_none() {
        return Err(format!(
            "--public-url {url:?} is not an http or https URL; give one like https://orizuru.example.com"
        ));
    }
    if uri.query().is_some() || url.contains('#') || url.contains('@') {
        return Err(format!(
            "--public-url {url:?} has a query, fragment or credentials; give only scheme, host, port and path, like https://orizuru.example.com/tsuru"
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::public_url;

    #[test]
    fn public_urls_are_checked() {
        assert_eq!(
            public_url("https://o.example.com/").unwrap(),
            "https://o.example.com"
        );
        assert_eq!(
            public_url("http://10.0.0.1:8080/tsuru").unwrap(),
            "http://10.0.0.1:8080/tsuru"
        );
        for bad in [
            "o.example.com",
            "ftp://o.example.com",
            "https://u:p@o.example.com",
            "https://o.example.com/?a=1",
        ] {
            assert!(public_url(bad).is_err(), "{bad}");
        }
    }
}
