//! [`ApiClient`]: the small HTTP/1.1 client `ferrymq import-definitions --url` and
//! `export-definitions --url` use to talk to a running broker's management API. One request
//! per connection, plain `http://` only, HTTP Basic credentials; hyper's client connection
//! over a tokio socket, nothing heavier.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
pub use hyper::Method;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host[:port][/prefix]`.
    #[error("invalid management URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting, sending or receiving failed.
    #[error("{url}: {reason}")]
    Http {
        /// The request's URL.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl ApiResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `reason` of a JSON error body (`{"error": .., "reason": ..}`), else the body.
    pub fn reason(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("reason")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| self.text().trim().to_owned())
    }
}

/// A management API at one base URL, with optional credentials.
#[derive(Debug, Clone)]
pub struct ApiClient {
    host: String,
    port: u16,
    /// Path prefix without a trailing slash ("" for the root).
    prefix: String,
    authorization: Option<HeaderValue>,
}

impl ApiClient {
    /// A client of the API at `url` (`http://host:15672`, optionally with a path prefix
    /// when a proxy serves it below one).
    pub fn new(url: &str, credentials: Option<(&str, &str)>) -> Result<ApiClient, ClientError> {
        let invalid = |reason: &str| ClientError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(invalid("only http:// is supported")),
            None => return Err(invalid("it must start with http://")),
        }
        let host = uri.host().ok_or_else(|| invalid("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authorization = match credentials {
            Some((user, password)) => {
                let encoded = BASE64.encode(format!("{user}:{password}"));
                let value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| invalid("the credentials cannot go in a header"))?;
                Some(value)
            }
            None => None,
        };
        Ok(ApiClient {
            host,
            port: uri.port_u16().unwrap_or(15672),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// `method path` with a JSON body.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<ApiResponse, ClientError> {
        self.request(method, path, Some(body.into())).await
    }

    /// One request; `path` starts with `/` and may carry a query.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<ApiResponse, ClientError> {
        let url = format!("http://{}:{}{}{path}", self.host, self.port, self.prefix);
        let fail = |reason: String| ClientError::Http {
            url: url.clone(),
            reason,
        };
        let authority = match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(header::HOST, authority)
            .header(header::CONNECTION, "close");
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization.clone());
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| fail(e.to_string()))?;
        let exchange = async {
            let stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| fail(format!("cannot connect: {e}")))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
            let driver = tokio::spawn(connection);
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(e.to_string()))?
                .to_bytes();
            driver.abort();
            Ok(ApiResponse { status, body })
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| fail(format!("no answer within {} s", TIMEOUT.as_secs())))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let client = ApiClient::new("http://127.0.0.1:1234/mgmt/", None).unwrap();
        assert_eq!((client.host.as_str(), client.port), ("127.0.0.1", 1234));
        assert_eq!(client.prefix, "/mgmt");
        let client = ApiClient::new("http://[::1]", Some(("a", "b"))).unwrap();
        assert_eq!((client.host.as_str(), client.port), ("::1", 15672));
        assert!(ApiClient::new("https://x", None).is_err());
        assert!(ApiClient::new("127.0.0.1:15672", None).is_err());
    }
}
