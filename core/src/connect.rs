//! Connection URLs as the stores use them.

/// Adds `sslmode=disable` to a URL whose host is the loopback interface and that does not
/// choose an `sslmode` itself; returns other URLs unchanged.
///
/// TLS over loopback protects nothing, and sqlx sets up TLS afresh for every connection:
/// measured on our 2-core machine, a connection to a local PostgreSQL with `ssl = on` took
/// about 92 ms with the default `sslmode=prefer` and 3 ms without TLS. A pool that opens
/// connections rarely hardly notices; a database-per-tenant router that opens pools on demand
/// pays it on every cold tenant. Name an `sslmode` in the URL to decide for yourself.
pub fn loopback_without_tls(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let loopback = matches!(
        parsed.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    if !loopback || parsed.query_pairs().any(|(k, _)| k == "sslmode") {
        return url.to_owned();
    }
    parsed.query_pairs_mut().append_pair("sslmode", "disable");
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::loopback_without_tls;

    #[test]
    fn only_loopback_urls_without_a_choice_change() {
        assert_eq!(
            loopback_without_tls("postgres://u@127.0.0.1:5432/db"),
            "postgres://u@127.0.0.1:5432/db?sslmode=disable"
        );
        assert_eq!(
            loopback_without_tls("postgres://u@localhost/db?application_name=x"),
            "postgres://u@localhost/db?application_name=x&sslmode=disable"
        );
        for unchanged in [
            "postgres://u@127.0.0.1/db?sslmode=require",
            "postgres://u@db.example.com/db",
            "not a url",
        ] {
            assert_eq!(loopback_without_tls(unchanged), unchanged);
        }
    }
}
