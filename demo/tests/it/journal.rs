//! Every query path of a scope reaches the explorer's list (the demo's [`Journal`], which a
//! tenant route's scope reports to): the scope's builders (`execute`, `fetch_all`,
//! `fetch_optional`) and the entity methods (`all_in`, `one_in`, `count_in`, `insert_in`,
//! `update_in`, `exec_in`, `delete_in`, `insert_many_in`), one statement each, in order.

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use tenancy_core::entity::{
    ActiveModelInTenant, CountInTenant, EntityInTenant, ManyInTenant, SelectInTenant,
};
use tenancy_core::sea_orm::sea_query::{Alias, Expr, ExprTrait};
use tenancy_core::sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tenancy_core::{NewTenant, Slug, Strategy};
use tenancy_demo::journal::Journal;
use tenancy_demo::strategy::StoreSettings;
use tenancy_example::project;
use tenancy_testkit::TestDatabase;
use uuid::Uuid;

crate::per_strategy!(every_query_path_of_a_scope_reaches_the_explorer);

fn new_project(id: Uuid, name: &str) -> project::ActiveModel {
    project::ActiveModel {
        id: Set(id),
        name: Set(name.to_owned()),
        description: Set(String::new()),
        ..Default::default()
    }
}

async fn every_query_path_of_a_scope_reaches_the_explorer(strategy: Strategy) -> Result<()> {
    let db = TestDatabase::create().await?;
    let settings = crate::helpers::settings(strategy, db.url())?;
    let store =
        tenancy_demo::strategy::open(strategy, db.url(), &StoreSettings::from(&settings)).await?;
    let tenant = store
        .create_tenant(NewTenant::new(Slug::parse("paths")?, "Paths"))
        .await?;
    let journal = Arc::new(Journal::default());
    let scope = store.scope(&tenant).await?.observed(journal.clone());

    // The scope's builders.
    let first = Uuid::now_v7();
    let insert = scope.insert(
        "projects",
        &["id", "name", "description"],
        vec![first.into(), "builder".into(), String::new().into()],
    )?;
    scope.execute(&insert).await?;
    let mut q = scope.select("projects", "p");
    for c in ["tenant_id", "id", "name", "description", "created_at"] {
        q.column((Alias::new("p"), Alias::new(c)));
    }
    let all: Vec<project::Model> = scope.fetch_all(&q).await?;
    ensure!(all.len() == 1, "fetch_all found {} rows", all.len());
    q.and_where(Expr::col((Alias::new("p"), Alias::new("id"))).eq(first));
    let one: Option<project::Model> = scope.fetch_optional(&q).await?;
    ensure!(one.is_some(), "fetch_optional found the row");

    // The entity methods.
    project::Entity::find().all_in(&scope).await?;
    project::Entity::find()
        .filter(project::Column::Id.eq(first))
        .one_in(&scope)
        .await?
        .context("one_in found the row")?;
    project::Entity::find().count_in(&scope).await?;
    let second = Uuid::now_v7();
    new_project(second, "entity").insert_in(&scope).await?;
    let mut renamed = new_project(second, "renamed");
    renamed.description = Set("changed".into());
    renamed.update_in(&scope).await?;
    project::Entity::update_many()
        .col_expr(project::Column::Description, Expr::value("many"))
        .exec_in(&scope)
        .await?;
    new_project(second, "renamed").delete_in(&scope).await?;
    project::Entity::insert_many_in(&scope, [new_project(Uuid::now_v7(), "third")]).await?;
    scope.commit().await?;

    let mut sent: Vec<String> = journal.of(tenant.id).into_iter().map(|s| s.sql).collect();
    sent.reverse();
    let verbs: Vec<&str> = sent
        .iter()
        .map(|sql| sql.split_whitespace().next().unwrap_or(""))
        .collect();
    let expected = [
        "INSERT", "SELECT", "SELECT", "SELECT", "SELECT", "SELECT", "INSERT", "UPDATE", "UPDATE",
        "DELETE", "INSERT",
    ];
    ensure!(
        verbs == expected,
        "the explorer lists {verbs:?}, expected one statement per query path {expected:?}: \
         {sent:#?}"
    );
    ensure!(
        sent[2].contains("WHERE") && sent[2].contains("\"id\" = $"),
        "the third is fetch_optional's: {}",
        sent[2]
    );
    drop(store);
    db.drop_database().await
}
