//! The profile seam: on a profile-cache miss the hot path asks a [`ProfileSource`] who a
//! user is now, rather than reaching into the store itself (the access decision never
//! imports the store).

use async_trait::async_trait;

use crate::store::Store;

/// What the app is told about a user, as the store has it now.
#[derive(Debug, Clone)]
pub struct Profile {
    pub sub: String,
    pub username: String,
    pub email: Option<String>,
    pub name: String,
    pub groups: Vec<String>,
}

#[async_trait]
pub trait ProfileSource: Send + Sync {
    /// The user's profile; `None` for one who is gone or disabled, or when it cannot be
    /// read (the request then gets a sign-in, never a guess).
    async fn profile(&self, pool: &str, uid: &str) -> Option<Profile>;
}

/// The store, asked on the control plane's runtime: the proxy's threads never hold a
/// store connection of their own.
pub struct StoreProfiles {
    pub store: Store,
    pub control: tokio::runtime::Handle,
}

#[async_trait]
impl ProfileSource for StoreProfiles {
    async fn profile(&self, pool: &str, uid: &str) -> Option<Profile> {
        let (store, pool, uid) = (self.store.clone(), pool.to_owned(), uid.to_owned());
        let fetched = self.control.spawn(async move { store.user(&pool, &uid).await });
        let user = fetched.await.ok()?.ok()?;
        (!user.disabled).then_some(Profile {
            sub: user.id,
            username: user.username,
            email: user.email,
            name: user.name,
            groups: user.groups,
        })
    }
}
