//! A cookie-jar HTTP client that follows redirects by hand (so tests see every hop) and
//! fills in forms the way a person's browser would.

use std::sync::Arc;
use std::time::Duration;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::header::{ACCEPT, LOCATION, ORIGIN};
use serde_json::Value;

use crate::support::Gateway;

pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
}

/// One response, and the hops that led to it.
pub struct Page {
    pub status: u16,
    pub url: String,
    pub body: String,
    pub hops: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    /// The value of a hidden (or any) input of the page's form.
    pub fn input(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\"");
        let at = self.body.find(&needle)?;
        let tag_start = self.body[..at].rfind('<')?;
        let tag_end = at + self.body[at..].find('>')?;
        let tag = &self.body[tag_start..tag_end];
        let v = tag.find("value=\"")? + 7;
        let end = v + tag[v..].find('"')?;
        Some(html_unescape(&tag[v..end]))
    }

    /// The text of the element with this id.
    pub fn text_of(&self, id: &str) -> Option<String> {
        let needle = format!("id=\"{id}\"");
        let at = self.body.find(&needle)?;
        let start = at + self.body[at..].find('>')? + 1;
        let end = start + self.body[start..].find('<')?;
        Some(html_unescape(&self.body[start..end]))
    }

    pub fn is_login_page(&self) -> bool {
        self.body.contains("action=\"/login\"")
    }
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Browser {
    pub fn new(gw: &Gateway) -> Browser {
        Browser::via(gw, &[])
    }

    /// A browser that reaches `hosts` at another address (a front proxy), every other
    /// host of the gateway at the gateway.
    pub fn via(gw: &Gateway, hosts: &[(&str, std::net::SocketAddr)]) -> Browser {
        let jar = Arc::new(Jar::default());
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(20))
            .no_proxy();
        for host in gw.hosts() {
            let addr = hosts.iter().find(|(h, _)| *h == host).map_or(gw.http, |(_, a)| *a);
            builder = builder.resolve(&host, addr);
        }
        if gw.https.is_some() {
            let pem = std::fs::read(gw.dir.path().join("certs/dev-ca.pem")).unwrap();
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        Browser {
            client: builder.build().unwrap(),
            jar,
        }
    }

    /// A navigation: GET with `Accept: text/html`, following redirects.
    pub async fn open(&self, url: &str) -> Page {
        self.follow(self.client.get(url).header(ACCEPT, "text/html"), url).await
    }

    /// A script's request: GET with `Accept: application/json`, no redirects followed.
    pub async fn fetch(&self, url: &str) -> Page {
        let resp = self
            .client
            .get(url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .unwrap();
        Browser::page(resp, vec![]).await
    }

    /// Submits a form of `page` (the one posting to `action`) with `fields` filled in.
    pub async fn submit(&self, page: &Page, action: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(String, String)> = Vec::new();
        for hidden in ["csrf", "request", "pending", "post_logout_redirect_uri", "state"] {
            if let Some(v) = page.input(hidden) {
                form.push((hidden.into(), v));
            }
        }
        for (k, v) in fields {
            form.push(((*k).into(), (*v).into()));
        }
        let base = url::Url::parse(&page.url).unwrap();
        let target = base.join(action).unwrap().to_string();
        // A browser says where a form was posted from.
        let origin = base.origin().ascii_serialization();
        self.follow(
            self.client
                .post(&target)
                .header(ACCEPT, "text/html")
                .header(ORIGIN, origin)
                .form(&form),
            &target,
        )
        .await
    }

    /// Signs out as a person does: opens the sign-out address, which asks, and presses
    /// the button. Returns the page that ends on.
    pub async fn sign_out(&self, url: &str) -> Page {
        let page = self.open(url).await;
        match ["/.poolgate/logout", "/logout"]
            .into_iter()
            .find(|a| html_unescape(&page.body).contains(&format!("action=\"{a}\"")))
        {
            Some(action) => self.submit(&page, action, &[]).await,
            None => page,
        }
    }

    async fn follow(&self, first: reqwest::RequestBuilder, url: &str) -> Page {
        let mut hops = vec![url.to_owned()];
        let mut resp = first.send().await.unwrap();
        for _ in 0..12 {
            if !resp.status().is_redirection() {
                break;
            }
            let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
            let next = url::Url::parse(resp.url().as_str())
                .unwrap()
                .join(&location)
                .unwrap()
                .to_string();
            hops.push(next.clone());
            resp = self.client.get(&next).header(ACCEPT, "text/html").send().await.unwrap();
        }
        Browser::page(resp, hops).await
    }

    async fn page(resp: reqwest::Response, hops: Vec<String>) -> Page {
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        Page {
            status,
            url,
            body,
            hops,
            headers,
        }
    }

    /// The value of a cookie this browser holds for `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let header = self.jar.cookies(&url.parse().unwrap())?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }
}
