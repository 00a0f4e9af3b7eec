//! The account page's part of federation: a signed-in person sees the ways they can sign
//! in to this pool — its password, and each source linked to them — and removes a link,
//! but never the last way in.

use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use crate::web::context::Ctx;
use crate::web::forms::{form_page, limits, post_ok, refuse_oversized};
use crate::web::state::{WebState, audit, current_sso};

/// `GET /account`.
pub(super) async fn page(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Response {
    render(&state, &ctx, &headers, None, None, StatusCode::OK).await
}

async fn render(
    state: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let Some(sso) = current_sso(state, ctx, headers) else {
        return Redirect::to("/").into_response();
    };
    let store = state.registry.store();
    let pool = ctx.pool.id.as_str();
    let uid = sso.uid.to_string();
    let (Ok(user), Ok(links)) = (store.user(pool, &uid).await, store.links_of_user(pool, &uid).await) else {
        return Redirect::to("/").into_response();
    };
    let links: Vec<_> = links
        .iter()
        .map(|l| {
            let name = ctx
                .pool
                .sources
                .iter()
                .find(|s| s.id.as_str() == l.source)
                .map_or_else(|| l.source.clone(), |s| s.name.clone());
            context! { id => l.id, source => name, since => date(l.created_at) }
        })
        .collect();
    form_page(
        ctx,
        headers,
        status,
        "account.html",
        context! {
            username => user.username, has_password => user.has_password, links => links,
            notice => notice, error => error,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct RemoveForm {
    csrf: String,
    link: String,
}

/// `POST /account/links/remove`: one of this person's own links, if another way in stays.
pub(super) async fn remove(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<RemoveForm>,
) -> Response {
    if let Some(refused) = refuse_oversized(&ctx, &[(&f.csrf, limits::CSRF), (&f.link, limits::LOGIN)]) {
        return refused;
    }
    let Some(sso) = current_sso(&state, &ctx, &headers) else {
        return Redirect::to("/").into_response();
    };
    if !post_ok(&ctx, &headers, &f.csrf) {
        return render(
            &state,
            &ctx,
            &headers,
            None,
            Some("The form had expired. Please try again."),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let store = state.registry.store();
    let pool = ctx.pool.id.as_str();
    let uid = sso.uid.to_string();
    let (Ok(user), Ok(links)) = (store.user(pool, &uid).await, store.links_of_user(pool, &uid).await) else {
        return Redirect::to("/").into_response();
    };
    // Only one's own links; an id of someone else's is as unknown as a made-up one.
    let Some(link) = links.iter().find(|l| l.id == f.link) else {
        return render(
            &state,
            &ctx,
            &headers,
            None,
            Some("There is no such link."),
            StatusCode::NOT_FOUND,
        )
        .await;
    };
    if !user.has_password && links.len() == 1 {
        return render(
            &state,
            &ctx,
            &headers,
            None,
            Some("This is your only way to sign in here, so it stays."),
            StatusCode::CONFLICT,
        )
        .await;
    }
    let Ok(ended) = store.delete_link(pool, &link.id).await else {
        return render(
            &state,
            &ctx,
            &headers,
            None,
            Some("Please try again in a moment."),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .await;
    };
    // What came in through the link ends with it, on this node at once.
    for (sso, expires) in &ended {
        if let Some(sid) = crate::session::SessionId::from_hex(sso) {
            state.sessions.revocations.revoke(sid, *expires);
        }
    }
    audit(
        &state,
        &ctx,
        &format!("user:{uid}"),
        "link.delete",
        &link.id,
        "ok",
        format!(
            "source={} iss={} sub={} by=self sessions_ended={}",
            link.source,
            link.issuer,
            link.subject,
            ended.len()
        ),
    )
    .await;
    render(
        &state,
        &ctx,
        &headers,
        Some("The link is removed."),
        None,
        StatusCode::OK,
    )
    .await
}

/// `YYYY-MM-DD` (UTC) of a Unix time, for people.
fn date(unix: i64) -> String {
    // Days to a civil date (the proleptic Gregorian calendar; H. Hinnant's algorithm).
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::date(951_782_400), "2000-02-29");
        assert_eq!(super::date(1_796_342_400), "2026-12-04");
    }
}
