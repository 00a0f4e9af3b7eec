//! Lowering an OpenID Provider client that is not a gateway app.

use super::*;

impl Lowering<'_> {
    pub(super) fn client(&mut self, pool: &str, id: &Spanned<String>, c: &Spanned<file::Client>) -> Option<Client> {
        let what = format!("client `{pool}/{}`", id.get_ref());
        let client_id = match ClientId::parse(id.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(id.span(), format!("{what}: {e}"));
                None
            }
        };
        let f = c.get_ref();
        let auth_method = match f.auth_method.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "client_secret_basic")) => ClientAuthMethod::ClientSecretBasic,
            Some((_, "client_secret_post")) => ClientAuthMethod::ClientSecretPost,
            Some((_, "none")) => ClientAuthMethod::None,
            Some((m, other)) => {
                self.err(
                    m.span(),
                    format!("{what}: auth_method `{other}`: use client_secret_basic, client_secret_post or none"),
                );
                ClientAuthMethod::ClientSecretBasic
            }
        };
        let mut uris = |list: &[Spanned<String>], field: &str| -> Vec<String> {
            let mut out = Vec::new();
            for u in list {
                let ok = url::Url::parse(u.get_ref()).is_ok_and(|x| {
                    matches!(x.scheme(), "http" | "https")
                        && x.fragment().is_none()
                        && x.host_str().is_some()
                        && x.username().is_empty()
                });
                if ok {
                    out.push(u.get_ref().clone());
                } else {
                    self.err(
                        u.span(),
                        format!(
                            "{what}: {field} `{}` must be an absolute http(s) URL without fragment",
                            u.get_ref()
                        ),
                    );
                }
            }
            out
        };
        let redirect_uris = uris(&f.redirect_uris, "redirect URI");
        let post_logout_redirect_uris = uris(&f.post_logout_redirect_uris, "post-logout redirect URI");
        let backchannel_logout_uri = uris(f.backchannel_logout_uri.as_slice(), "back-channel logout URI")
            .into_iter()
            .next();
        let mut grant_types = Vec::new();
        match &f.grant_types {
            None => grant_types.extend([GrantType::AuthorizationCode, GrantType::RefreshToken]),
            Some(list) => {
                for g in list {
                    match GrantType::parse(g.get_ref()) {
                        Some(GrantType::ClientCredentials) if auth_method == ClientAuthMethod::None => self.err(
                            g.span(),
                            format!("{what}: a public client (auth_method none) cannot use client_credentials"),
                        ),
                        Some(t) => grant_types.push(t),
                        None => self.err(
                            g.span(),
                            format!(
                                "{what}: grant type `{}`: use authorization_code, refresh_token or client_credentials",
                                g.get_ref()
                            ),
                        ),
                    }
                }
            }
        }
        let scopes = match &f.scopes {
            None => SCOPES.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for s in list {
                    if SCOPES.contains(&s.get_ref().as_str()) {
                        out.push(s.get_ref().clone());
                    } else {
                        self.err(
                            s.span(),
                            format!("{what}: unknown scope `{}`: use {}", s.get_ref(), SCOPES.join(", ")),
                        );
                    }
                }
                out
            }
        };
        let id_token_alg = match f
            .id_token_signed_response_alg
            .as_ref()
            .map(|a| (a, a.get_ref().as_str()))
        {
            None | Some((_, "RS256")) => SigningAlg::RS256,
            Some((_, "ES256")) => SigningAlg::ES256,
            Some((a, other)) => {
                self.err(
                    a.span(),
                    format!("{what}: id_token_signed_response_alg `{other}`: use RS256 or ES256"),
                );
                SigningAlg::RS256
            }
        };
        let access_token_lifetime =
            self.written(f.access_token_lifetime.as_ref(), &what, "access_token_lifetime", "10m");
        let refresh_token_lifetime = self.written(
            f.refresh_token_lifetime.as_ref(),
            &what,
            "refresh_token_lifetime",
            "30d",
        );
        Some(Client {
            id: client_id?,
            origin: Origin::File {
                line: self.line(id.span().start),
            },
            name: f
                .name
                .as_ref()
                .map_or_else(|| id.get_ref().clone(), |n| n.get_ref().clone()),
            auth_method,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            grant_types,
            scopes,
            id_token_alg,
            access_token_lifetime,
            refresh_token_lifetime,
        })
    }
}
