//! The `users` and `tokens` commands: create a user (an owner of a tenant, if asked), and
//! issue, list and revoke a user's API tokens.

use anyhow::Result;
use tenancy_core::Slug;

use super::args::{TokensCommand, UsersCommand};
use crate::accounts::{self, NewUser};
use crate::startup::Backend;

pub(super) async fn users(backend: &Backend, cmd: UsersCommand) -> Result<()> {
    match cmd {
        UsersCommand::Create {
            email,
            name,
            tenant,
        } => {
            let user = accounts::create_user(&backend.control, NewUser { email, name }).await?;
            if let Some(slug) = tenant {
                let t = backend.store.tenant_by_slug(&Slug::parse(&slug)?).await?;
                accounts::set_membership(&backend.control, t.id, user.id, accounts::Role::Owner)
                    .await?;
            }
            println!("{}", serde_json::to_string_pretty(&user)?);
            Ok(())
        }
    }
}

pub(super) async fn tokens(backend: &Backend, cmd: TokensCommand) -> Result<()> {
    match cmd {
        TokensCommand::Create {
            user,
            expires_in_days,
        } => {
            let expires_at =
                expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let token = accounts::create_token(&backend.control, user, expires_at).await?;
            println!("{}", token.token);
            eprintln!("(shown once: it is stored hashed; its id is {})", token.id);
            Ok(())
        }
        TokensCommand::List { user } => {
            let tokens = accounts::list_tokens(&backend.control, user).await?;
            println!("{}", serde_json::to_string_pretty(&tokens)?);
            Ok(())
        }
        TokensCommand::Revoke { id } => {
            accounts::revoke_token(&backend.control, id).await?;
            eprintln!("token {id} revoked");
            Ok(())
        }
    }
}
