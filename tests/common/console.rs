//! The web console as a browser without a script engine sees it: sign in (the sign-in
//! form's CSRF field and cookie, then the session cookie), pages fetched with the session
//! cookie, and API calls sent as the console's script sends them (cookie plus
//! `X-CSRF-Token`). Redirects are not followed: tests check where they lead.

use super::api::Reply;
use std::time::Duration;

/// A signed-in console session on one server.
#[derive(Clone)]
pub struct Console {
    base: String,
    agent: ureq::Agent,
    /// The session cookie's value.
    pub session: String,
    /// The CSRF token the session's pages carry.
    pub csrf: String,
}

/// A page: status, `Location` if a redirect, every `Set-Cookie`, the body (with "&#x2f;"
/// read as '/'), and the Content-Security-Policy it came with.
pub struct PageReply {
    pub status: u16,
    pub location: Option<String>,
    pub cookies: Vec<String>,
    pub body: String,
    pub csp: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One request (blocking, off the runtime's workers): `cookies` as a `Cookie` header,
/// `form` as a urlencoded body, `json` as a JSON body, extra `headers`.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    cookies: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> PageReply {
    let url = format!("{base}{path}");
    let method = method.to_string();
    let cookies = cookies.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = body.map(|(kind, text)| (kind.to_string(), text));
    tokio::task::spawn_blocking(move || {
        let agent = agent();
        let mut builder = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        if !cookies.is_empty() {
            builder = builder.header("Cookie", &cookies);
        }
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        let result = match body {
            Some((kind, text)) => {
                agent.run(builder.header("Content-Type", kind).body(text).unwrap())
            }
            None => agent.run(builder.body(()).unwrap()),
        };
        let mut response = result.unwrap_or_else(|err| panic!("{method} {url}: {err}"));
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let location = header("location");
        let csp = header("content-security-policy");
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let status = response.status().as_u16();
        // The templates escape '/' as "&#x2f;" too: the same text to a browser, decoded
        // here so tests can look for paths; every other escape (&lt; &gt; &amp; &quot;
        // &#x27;) stays for the tests of escaping.
        let body = response
            .body_mut()
            .read_to_string()
            .unwrap_or_default()
            .replace("&#x2f;", "/");
        PageReply {
            status,
            location,
            cookies,
            body,
            csp,
        }
    })
    .await
    .unwrap()
}

/// The value of cookie `name` among `Set-Cookie` headers.
pub fn set_cookie(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|cookie| {
        let pair = cookie.split(';').next()?;
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().to_string())
    })
}

/// The value of the first `<input ... name="<name>" value="...">` or
/// `<meta name="<name>" content="...">` of a page.
pub fn field_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let attr = if tag.starts_with("<meta") {
        "content=\""
    } else {
        "value=\""
    };
    let start = tag.find(attr)? + attr.len();
    let end = start + tag[start..].find('"')?;
    Some(tag[start..end].to_string())
}

fn urlencode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

impl Console {
    /// Signs in at `addr` with an API key or JWT, as the sign-in form does.
    pub async fn sign_in(addr: std::net::SocketAddr, token: &str) -> Console {
        Console::try_sign_in(addr, token)
            .await
            .unwrap_or_else(|reply| panic!("sign-in refused ({}): {}", reply.status, reply.body))
    }

    /// Signs in; the sign-in page's reply when it is refused.
    pub async fn try_sign_in(
        addr: std::net::SocketAddr,
        token: &str,
    ) -> Result<Console, PageReply> {
        let base = format!("http://{addr}");
        let form = request(&base, "GET", "/ui/login", "", &[], None).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = field_value(&form.body, "csrf").expect("the sign-in form has a csrf field");
        let cookie = set_cookie(&form.cookies, "fo_sign_in").expect("the sign-in cookie");
        let body = urlencode(&[("token", token), ("csrf", &csrf), ("next", "/ui/")]);
        let reply = request(
            &base,
            "POST",
            "/ui/login",
            &format!("fo_sign_in={cookie}"),
            &[],
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await;
        let Some(session) = set_cookie(&reply.cookies, "fo_session").filter(|s| !s.is_empty())
        else {
            return Err(reply);
        };
        let mut console = Console {
            base,
            agent: agent(),
            session,
            csrf: String::new(),
        };
        let page = console.page("/ui/").await;
        assert_eq!(page.status, 200, "{}", page.body);
        console.csrf = field_value(&page.body, "csrf-token").expect("pages carry the CSRF token");
        Ok(console)
    }

    fn cookie(&self) -> String {
        format!("fo_session={}", self.session)
    }

    /// GETs a page with the session cookie.
    pub async fn page(&self, path: &str) -> PageReply {
        let _ = &self.agent;
        request(&self.base, "GET", path, &self.cookie(), &[], None).await
    }

    /// Posts a form with the session cookie (e.g. sign-out with `csrf`).
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> PageReply {
        let body = urlencode(fields);
        request(
            &self.base,
            "POST",
            path,
            &self.cookie(),
            &[],
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    /// An API call as the console's script makes it: the session cookie and, when
    /// `with_csrf`, the session's CSRF token.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        with_csrf: bool,
    ) -> Reply {
        let mut headers = vec![("Accept", "application/json")];
        if with_csrf {
            headers.push(("X-CSRF-Token", self.csrf.as_str()));
        }
        let body = body.map(|body| ("application/json", body.to_string()));
        let reply = request(&self.base, method, path, &self.cookie(), &headers, body).await;
        Reply {
            status: reply.status,
            body: reply.body,
            retry_after: None,
        }
    }
}
