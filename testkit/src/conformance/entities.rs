//! sea-orm entities through a scope ([`tenancy_core::entity`]): reads, relations, bulk writes
//! and writes that carry another tenant's id, with every count taken directly in the database.

use anyhow::{Result, ensure};
use tenancy_core::entity::{
    ActiveModelInTenant, CountInTenant, EntityInTenant, ManyInTenant, SelectInTenant,
};
use tenancy_core::sea_orm::sea_query::Expr;
use tenancy_core::sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait,
};
use tenancy_core::{Error, ScopeMode, Tenant, TenantStore};
use tenancy_example::{project, seed, task};
use uuid::Uuid;

use super::support::{expect_err, rows_anywhere, rows_where, tenant};
use super::{Harness, StoreConfig};

/// Two tenants, each with `projects` projects of `tasks` tasks, written with the builders.
async fn two_tenants(
    store: &dyn TenantStore,
    projects: usize,
    tasks: usize,
) -> Result<(Tenant, Tenant)> {
    let a = tenant(store, "alpha").await?;
    let b = tenant(store, "bravo").await?;
    for (t, prefix) in [(&a, "A"), (&b, "B")] {
        let scope = store.scope(t).await?;
        seed::projects_with_tasks(&scope, prefix, projects, tasks).await?;
        scope.commit().await?;
    }
    Ok((a, b))
}

fn is_mismatch(e: &Error) -> bool {
    matches!(e, Error::TenantMismatch { .. })
}

/// `find` through A's scope returns A's rows only, whatever the filter asks for: all rows,
/// B's key, B's tenant id, a count, a join on the relation and `find_also_related`.
pub async fn entity_reads_stay_in_the_tenant(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let (a, b) = two_tenants(&*store, 2, 3).await?;
    let bs = store.scope(&b).await?;
    let b_tasks = task::Entity::find().all_in(&bs).await?;
    bs.commit().await?;
    ensure!(b_tasks.len() == 6 && b_tasks.iter().all(|t| t.tenant_id == b.id.as_uuid()));

    let s = store.scope(&a).await?;
    let all = task::Entity::find()
        .order_by_asc(task::Column::Id)
        .all_in(&s)
        .await?;
    ensure!(
        all.len() == 6 && all.iter().all(|t| t.tenant_id == a.id.as_uuid()),
        "A's find saw {} rows: {all:?}",
        all.len()
    );
    let theirs = &b_tasks[0];
    let by_key = task::Entity::find_by_id((theirs.tenant_id, theirs.id))
        .one_in(&s)
        .await?;
    ensure!(by_key.is_none(), "A found B's task by its key: {by_key:?}");
    let by_tenant = task::Entity::find()
        .filter(task::Column::TenantId.eq(b.id.as_uuid()))
        .all_in(&s)
        .await?;
    ensure!(
        by_tenant.is_empty(),
        "A found B's rows by B's id: {by_tenant:?}"
    );
    let counted = task::Entity::find().count_in(&s).await?;
    ensure!(counted == 6, "A counted {counted} tasks");

    // A join on the relation, asking for B's project names: nothing.
    let joined = task::Entity::find()
        .join(JoinType::InnerJoin, task::Relation::Project.def())
        .filter(project::Column::Name.starts_with("B"))
        .all_in(&s)
        .await?;
    ensure!(joined.is_empty(), "a join reached B's projects: {joined:?}");
    let joined = task::Entity::find()
        .join(JoinType::InnerJoin, task::Relation::Project.def())
        .filter(project::Column::Name.eq("A0"))
        .all_in(&s)
        .await?;
    ensure!(
        joined.len() == 3,
        "A0 has {} tasks by the join",
        joined.len()
    );

    let pairs = project::Entity::find()
        .find_also_related(task::Entity)
        .all_in(&s)
        .await?;
    ensure!(pairs.len() == 6, "{} project/task pairs", pairs.len());
    for (p, t) in &pairs {
        let t = t
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("a project without its tasks"))?;
        ensure!(
            p.tenant_id == a.id.as_uuid() && t.tenant_id == a.id.as_uuid() && t.project_id == p.id,
            "pair outside A: {p:?} {t:?}"
        );
    }
    let first = task::Entity::find()
        .find_also_related(project::Entity)
        .one_in(&s)
        .await?;
    ensure!(
        matches!(first, Some((t, Some(p))) if t.tenant_id == a.id.as_uuid() && p.id == t.project_id)
    );
    s.commit().await?;
    Ok(())
}

/// `update_many` and `delete_many` through A's scope, with filters that would match B's rows
/// too, touch only A's rows; one that sets `tenant_id` is refused and writes nothing.
pub async fn entity_bulk_writes_stay_in_the_tenant(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let (a, b) = two_tenants(&*store, 2, 3).await?;
    let b_rows = rows_anywhere(h, b.id).await?;

    let s = store.scope(&a).await?;
    let updated = task::Entity::update_many()
        .col_expr(task::Column::Done, Expr::value(true))
        .filter(task::Column::Title.starts_with("task"))
        .exec_in(&s)
        .await?;
    s.commit().await?;
    ensure!(updated == 6, "update_many reported {updated} rows");
    ensure!(rows_where(h, a.id, "tasks", "done").await? == 6);
    ensure!(
        rows_where(h, b.id, "tasks", "done").await? == 0,
        "update_many through A's scope marked B's tasks done"
    );

    let s = store.scope(&a).await?;
    let moved = task::Entity::update_many()
        .col_expr(task::Column::TenantId, Expr::value(b.id.as_uuid()))
        .exec_in(&s)
        .await;
    expect_err(moved, "update_many setting tenant_id", is_mismatch)?;
    s.rollback().await?;
    ensure!(rows_where(h, a.id, "tasks", "true").await? == 6);

    let s = store.scope(&a).await?;
    let deleted = task::Entity::delete_many()
        .filter(task::Column::Title.eq("task 0"))
        .exec_in(&s)
        .await?;
    s.commit().await?;
    ensure!(deleted == 2, "delete_many reported {deleted} rows");
    ensure!(rows_where(h, a.id, "tasks", "true").await? == 4);
    ensure!(
        rows_anywhere(h, b.id).await? == b_rows,
        "delete_many through A's scope removed B's rows"
    );
    Ok(())
}

/// Inserts are stamped with the scope's tenant; an insert, update or delete carrying B's
/// `tenant_id`, and an `insert_many` with one such row, are refused and write nothing; an
/// update of a key A does not have is "not found".
pub async fn entity_writes_of_another_tenant_are_refused(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let (a, b) = two_tenants(&*store, 1, 2).await?;
    let bs = store.scope(&b).await?;
    let b_task = task::Entity::find()
        .one_in(&bs)
        .await?
        .ok_or_else(|| anyhow::anyhow!("B has no task"))?;
    bs.commit().await?;
    let (a_rows, b_rows) = (rows_anywhere(h, a.id).await?, rows_anywhere(h, b.id).await?);

    let s = store.scope(&a).await?;
    let a_project = project::Entity::find()
        .one_in(&s)
        .await?
        .ok_or_else(|| anyhow::anyhow!("A has no project"))?;
    // Stamped: no tenant_id given, A's is written.
    let mine = task::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(a_project.id),
        title: Set("stamped".into()),
        ..Default::default()
    }
    .insert_in(&s)
    .await?;
    ensure!(mine.tenant_id == a.id.as_uuid() && !mine.done, "{mine:?}");
    let renamed = task::ActiveModel {
        id: Set(mine.id),
        title: Set("renamed".into()),
        ..Default::default()
    }
    .update_in(&s)
    .await?;
    ensure!(renamed.title == "renamed" && renamed.tenant_id == a.id.as_uuid());
    s.commit().await?;
    let a_rows = a_rows + 1;
    ensure!(rows_anywhere(h, a.id).await? == a_rows);

    let s = store.scope(&a).await?;
    let theirs = task::ActiveModel {
        tenant_id: Set(b.id.as_uuid()),
        id: Set(Uuid::now_v7()),
        project_id: Set(b_task.project_id),
        title: Set("into B".into()),
        ..Default::default()
    };
    expect_err(
        theirs.clone().insert_in(&s).await,
        "insert with B's tenant_id",
        is_mismatch,
    )?;
    let mut edited = b_task.clone().into_active_model();
    edited.title = Set("changed by A".into());
    expect_err(
        edited.update_in(&s).await,
        "update of B's model",
        is_mismatch,
    )?;
    expect_err(
        b_task.clone().into_active_model().delete_in(&s).await,
        "delete of B's model",
        is_mismatch,
    )?;
    let fine = task::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(a_project.id),
        title: Set("would be fine".into()),
        ..Default::default()
    };
    expect_err(
        task::Entity::insert_many_in(&s, [fine, theirs]).await,
        "insert_many with one of B's rows",
        is_mismatch,
    )?;
    // B's task id under A's tenant: A has no such row.
    let missing = task::ActiveModel {
        id: Set(b_task.id),
        title: Set("not A's".into()),
        ..Default::default()
    }
    .update_in(&s)
    .await;
    expect_err(missing, "update of a key A does not have", |e| {
        matches!(e, Error::NotFound(_))
    })?;
    let gone = task::ActiveModel {
        id: Set(b_task.id),
        ..Default::default()
    }
    .delete_in(&s)
    .await?;
    ensure!(gone == 0, "deleted {gone} rows by B's task id");
    s.commit().await?;

    ensure!(
        rows_anywhere(h, a.id).await? == a_rows && rows_anywhere(h, b.id).await? == b_rows,
        "a refused write wrote something"
    );
    ensure!(rows_where(h, b.id, "tasks", "title = 'changed by A'").await? == 0);
    Ok(())
}

/// A read-only scope ([`ScopeMode::ReadOnly`], the demo's GET routes) reads like any other
/// and refuses every write with [`Error::ReadOnly`] before sending it: an entity's insert,
/// update, delete and bulk update, and the scope's own insert builder. It still reads after
/// the refusals (nothing reached its transaction), and the tenant's rows are as they were.
pub async fn read_only_scope_refuses_writes(h: &Harness) -> Result<()> {
    let store = h.store(StoreConfig::default()).await?;
    let (a, _) = two_tenants(&*store, 2, 1).await?;
    let before = rows_anywhere(h, a.id).await?;
    let scope = store.scope_with(&a, ScopeMode::ReadOnly).await?;
    ensure!(
        scope.is_read_only(),
        "a ReadOnly scope says it is read-only"
    );
    let projects = project::Entity::find().all_in(&scope).await?;
    ensure!(projects.len() == 2, "it reads: {} projects", projects.len());
    let read_only = |e: &Error| matches!(e, Error::ReadOnly(_));
    let new = project::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set("written".into()),
        description: Set(String::new()),
        ..Default::default()
    };
    expect_err(new.insert_in(&scope).await, "insert_in", read_only)?;
    let mut renamed = projects[0].clone().into_active_model();
    renamed.name = Set("renamed".into());
    expect_err(renamed.update_in(&scope).await, "update_in", read_only)?;
    expect_err(
        projects[0]
            .clone()
            .into_active_model()
            .delete_in(&scope)
            .await,
        "delete_in",
        read_only,
    )?;
    expect_err(
        project::Entity::update_many()
            .col_expr(project::Column::Name, Expr::value("all"))
            .exec_in(&scope)
            .await,
        "update_many",
        read_only,
    )?;
    let insert = scope.insert(
        "projects",
        &["id", "name", "description"],
        vec![Uuid::now_v7().into(), "built".into(), String::new().into()],
    )?;
    expect_err(
        scope.execute(&insert).await,
        "the insert builder",
        read_only,
    )?;
    let still = project::Entity::find().count_in(&scope).await?;
    ensure!(still == 2, "it still reads after the refusals: {still}");
    drop(scope);
    let after = rows_anywhere(h, a.id).await?;
    ensure!(
        after == before,
        "nothing was written: {before} rows, then {after}"
    );
    Ok(())
}
