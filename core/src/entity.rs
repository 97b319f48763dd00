//! sea-orm entities through a [`TenantScope`]: the same entity code in every strategy.
//!
//! Write your domain as ordinary sea-orm entities (`DeriveEntityModel`, relations, active
//! models) and run every statement through a scope with the `*_in` methods of the traits
//! here, in the manner of sea-orm's own `all(db)` and `insert(db)`:
//!
//! ```no_run
//! # // no_run: needs a store and a tenant, which the conformance suite builds.
//! # mod invoice {
//! #     use tenancy_core::sea_orm::entity::prelude::*;
//! #     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
//! #     #[sea_orm(table_name = "invoices")]
//! #     pub struct Model {
//! #         #[sea_orm(primary_key, auto_increment = false)]
//! #         pub tenant_id: Uuid,
//! #         #[sea_orm(primary_key, auto_increment = false)]
//! #         pub id: Uuid,
//! #         pub customer: String,
//! #         pub amount_cents: i64,
//! #         pub paid: bool,
//! #     }
//! #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! #     pub enum Relation {}
//! #     impl ActiveModelBehavior for ActiveModel {}
//! # }
//! // `invoice` is an application's own entity (the workspace's examples/invoices).
//! use tenancy_core::entity::{ActiveModelInTenant, SelectInTenant};
//! use tenancy_core::sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
//! # async fn f(scope: &tenancy_core::TenantScope) -> tenancy_core::Result<()> {
//! let unpaid = invoice::Entity::find()
//!     .filter(invoice::Column::Paid.eq(false))
//!     .all_in(scope)
//!     .await?;
//! let new = invoice::ActiveModel {
//!     id: Set(uuid::Uuid::now_v7()),
//!     customer: Set("Globex".into()),
//!     amount_cents: Set(12_500),
//!     paid: Set(false),
//!     ..Default::default()
//! }
//! .insert_in(scope)
//! .await?;
//! # Ok(()) }
//! ```
//!
//! What the scope enforces, so that the entity code cannot forget it:
//! - **reads and bulk writes are filtered** by the scope's tenant: `tenant_id = <tenant>` is
//!   added to every `SELECT`, `UPDATE` and `DELETE` on the entity's table (and, for
//!   [`SelectTwo`], on the related table too), whatever filters the caller wrote;
//! - **inserts are stamped**: an active model whose `tenant_id` is not set gets the scope's;
//! - **another tenant's id is refused**: a model or active model carrying another tenant's
//!   `tenant_id`, or an `update_many` that sets `tenant_id`, is refused with
//!   [`Error::TenantMismatch`] before anything is sent;
//! - **tables resolve to the tenant's placement**: the statement is rendered by the scope, and
//!   in a schema-per-tenant scope every table reference (joins and subqueries included) is
//!   qualified with the tenant's schema, with no `search_path` and no extra round trip;
//! - **no statement leaves the tenant's tables**: the statement's tables are listed with
//!   sea-query's audit, and one that names a schema of its own, or a control table (a name
//!   starting with `tenancy_`), is refused.
//!
//! What it cannot enforce: SQL the entity does not describe (`Expr::cust`, raw statements),
//! and the tenant of a table the caller brings in beyond the entity's own: a `join` on a
//! relation whose key does not start with `tenant_id`, or a hand-written sub-query, is placed
//! in the tenant's schema or database but, in shared tables, kept to the tenant only by
//! row-level security. Hand-written SQL belongs in the string builders of [`TenantScope`],
//! which put the tenant into the statement by construction. Entity hooks
//! (`ActiveModelBehavior::before_save` and the rest) are not run: they are given a sea-orm
//! connection, which a scope deliberately is not.
//!
//! Every entity used here must have a `tenant_id` column, as every table of a tenant does in
//! this workspace (it is what lets a tenant move between placements and shared tables be
//! distributed by tenant).

use std::str::FromStr;

use async_trait::async_trait;
use sea_orm::sea_query::{
    self, Alias, Condition, DeleteStatement, Expr, ExprTrait, InsertStatement, Query,
    SelectStatement, UpdateStatement,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DeleteMany, EntityName, EntityTrait, Iterable,
    QueryFilter, QuerySelect, QueryTrait, Select, SelectTwo, Statement, UpdateMany, Value,
};

use crate::error::{Error, Result};
use crate::scope::{TENANT_ID, TenantScope};

/// The `tenant_id` column of entity `E`, or a clear error if it has none.
pub fn tenant_column<E: EntityTrait>() -> Result<E::Column> {
    E::Column::from_str(TENANT_ID).map_err(|_| Error::Invalid {
        field: "entity",
        reason: format!(
            "{} has no tenant_id column: every tenant table needs one",
            E::default().table_name()
        ),
    })
}

fn tenant_value(scope: &TenantScope) -> Value {
    Value::from(scope.tenant_id().as_uuid())
}

fn mismatch<E: EntityTrait>() -> Error {
    Error::TenantMismatch {
        table: E::default().table_name(),
    }
}

/// Gives an active model the scope's tenant if it has none, and refuses one that carries
/// another tenant's.
fn stamp<A: ActiveModelTrait>(scope: &TenantScope, model: &mut A) -> Result<()> {
    let column = tenant_column::<A::Entity>()?;
    let mine = tenant_value(scope);
    match model.get(column) {
        ActiveValue::NotSet => model.try_set(column, mine).map_err(Error::from),
        ActiveValue::Set(v) | ActiveValue::Unchanged(v) if v == mine => Ok(()),
        _ => Err(mismatch::<A::Entity>()),
    }
}

/// `<table>.tenant_id = <tenant>` for the table of `E`.
fn belongs<E: EntityTrait>(scope: &TenantScope) -> Result<Expr> {
    Ok(tenant_column::<E>()?.eq(tenant_value(scope)))
}

// ANCHOR: select_in
/// Reads through a scope: [`Select`] and [`SelectTwo`] (`find_also_related`).
#[async_trait]
pub trait SelectInTenant: Sized {
    /// What one row becomes.
    type Item: Send;

    /// Every row the query finds among the scope's tenant's rows.
    async fn all_in(self, scope: &TenantScope) -> Result<Vec<Self::Item>>;

    /// The first row the query finds among the scope's tenant's rows.
    async fn one_in(self, scope: &TenantScope) -> Result<Option<Self::Item>>;
}
// ANCHOR_END: select_in

// ANCHOR: select_impl
#[async_trait]
impl<E> SelectInTenant for Select<E>
where
    E: EntityTrait,
    E::Model: Send,
{
    type Item = E::Model;

    async fn all_in(self, scope: &TenantScope) -> Result<Vec<E::Model>> {
        let query = self.filter(belongs::<E>(scope)?).into_query();
        scope.fetch_rendered(scope.render(&query)?).await
    }

    async fn one_in(self, scope: &TenantScope) -> Result<Option<E::Model>> {
        Ok(self.limit(1).all_in(scope).await?.into_iter().next())
    }
}
// ANCHOR_END: select_impl

#[async_trait]
impl<E, F> SelectInTenant for SelectTwo<E, F>
where
    E: EntityTrait,
    F: EntityTrait,
    E::Model: Send,
    F::Model: Send,
{
    type Item = (E::Model, Option<F::Model>);

    async fn all_in(self, scope: &TenantScope) -> Result<Vec<Self::Item>> {
        let rows = scope
            .query_rendered(scope.render(&two_query::<E, F>(self, scope)?)?)
            .await?;
        rows.into_iter().map(two_row::<E, F>).collect()
    }

    async fn one_in(self, scope: &TenantScope) -> Result<Option<Self::Item>> {
        Ok(self.limit(1).all_in(scope).await?.into_iter().next())
    }
}

/// The related table is joined on the relation, and must be the scope's tenant's too, or
/// absent (a left join that found nothing).
fn two_query<E: EntityTrait, F: EntityTrait>(
    select: SelectTwo<E, F>,
    scope: &TenantScope,
) -> Result<SelectStatement> {
    let related = Condition::any()
        .add(belongs::<F>(scope)?)
        .add(tenant_column::<F>()?.is_null());
    Ok(select
        .filter(belongs::<E>(scope)?)
        .filter(related)
        .into_query())
}

fn two_row<E: EntityTrait, F: EntityTrait>(
    row: sea_orm::QueryResult,
) -> Result<(E::Model, Option<F::Model>)> {
    use sea_orm::{SelectTwoModel, SelectorTrait};
    Ok(SelectTwoModel::<E::Model, F::Model>::from_raw_query_result(
        row,
    )?)
}

/// Counting through a scope.
#[async_trait]
pub trait CountInTenant {
    /// How many of the scope's tenant's rows the query finds.
    async fn count_in(self, scope: &TenantScope) -> Result<u64>;
}

#[async_trait]
impl<E: EntityTrait> CountInTenant for Select<E> {
    async fn count_in(self, scope: &TenantScope) -> Result<u64> {
        let inner = self.filter(belongs::<E>(scope)?).into_query();
        let mut query = Query::select();
        query
            .expr(Expr::col(sea_query::Asterisk).count())
            .from_subquery(inner, Alias::new("counted"));
        let rows = scope.query_rendered(scope.render(&query)?).await?;
        let n: i64 = match rows.first() {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

// ANCHOR: active_model_in
/// Writes of one row through a scope, from an active model.
#[async_trait]
pub trait ActiveModelInTenant: ActiveModelTrait + Sized {
    /// Inserts the row for the scope's tenant (stamping `tenant_id` when it is not set) and
    /// returns it as stored.
    async fn insert_in(self, scope: &TenantScope) -> Result<<Self::Entity as EntityTrait>::Model>;

    /// Updates the row (found by its primary key among the scope's tenant's rows) with the
    /// values set, and returns it as stored; [`Error::NotFound`] if the tenant has no such row.
    async fn update_in(self, scope: &TenantScope) -> Result<<Self::Entity as EntityTrait>::Model>;

    /// Deletes the row (found by its primary key among the scope's tenant's rows); returns
    /// how many rows went (0 or 1).
    async fn delete_in(self, scope: &TenantScope) -> Result<u64>;
}
// ANCHOR_END: active_model_in

#[async_trait]
impl<A> ActiveModelInTenant for A
where
    A: ActiveModelTrait + Send + Sync + 'static,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A> + Send,
{
    async fn insert_in(mut self, scope: &TenantScope) -> Result<<A::Entity as EntityTrait>::Model> {
        stamp(scope, &mut self)?;
        let mut query: InsertStatement = A::Entity::insert(self).into_query();
        query.returning_all();
        one_returned::<A::Entity>(scope, scope.render(&query)?).await
    }

    async fn update_in(mut self, scope: &TenantScope) -> Result<<A::Entity as EntityTrait>::Model> {
        stamp(scope, &mut self)?;
        let mut query: UpdateStatement = A::Entity::update(self.clone()).validate()?.into_query();
        if query.get_values().is_empty() {
            // Nothing to change: the row as it is, if it is the tenant's.
            let mut select = <A::Entity as EntityTrait>::find();
            for key in <<A::Entity as EntityTrait>::PrimaryKey as Iterable>::iter() {
                let column = sea_orm::PrimaryKeyToColumn::into_column(key);
                if let ActiveValue::Set(v) | ActiveValue::Unchanged(v) = self.get(column) {
                    select = select.filter(column.eq(v));
                }
            }
            return select
                .one_in(scope)
                .await?
                .ok_or(Error::NotFound(A::Entity::default().table_name()));
        }
        query
            .and_where(belongs::<A::Entity>(scope)?)
            .returning_all();
        one_returned::<A::Entity>(scope, scope.render(&query)?).await
    }

    async fn delete_in(mut self, scope: &TenantScope) -> Result<u64> {
        stamp(scope, &mut self)?;
        let mut query: DeleteStatement = A::Entity::delete(self).validate()?.into_query();
        query.and_where(belongs::<A::Entity>(scope)?);
        scope.execute_rendered(scope.render(&query)?).await
    }
}

async fn one_returned<E: EntityTrait>(scope: &TenantScope, stmt: Statement) -> Result<E::Model> {
    scope
        .fetch_rendered(stmt)
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound(E::default().table_name()))
}

// ANCHOR: many_in
/// Bulk writes through a scope: [`UpdateMany`] and [`DeleteMany`], limited to the scope's
/// tenant's rows whatever their filters say.
#[async_trait]
pub trait ManyInTenant {
    /// Runs the statement; returns how many of the tenant's rows it touched.
    async fn exec_in(self, scope: &TenantScope) -> Result<u64>;
}
// ANCHOR_END: many_in

#[async_trait]
impl<E: EntityTrait> ManyInTenant for UpdateMany<E> {
    async fn exec_in(self, scope: &TenantScope) -> Result<u64> {
        let column = tenant_column::<E>()?;
        let mut query = self.into_query();
        if query
            .get_values()
            .iter()
            .any(|(c, _)| c.to_string() == sea_orm::IdenStatic::as_str(&column))
        {
            return Err(mismatch::<E>());
        }
        query.and_where(belongs::<E>(scope)?);
        scope.execute_rendered(scope.render(&query)?).await
    }
}

#[async_trait]
impl<E: EntityTrait> ManyInTenant for DeleteMany<E> {
    async fn exec_in(self, scope: &TenantScope) -> Result<u64> {
        let query = self.filter(belongs::<E>(scope)?).into_query();
        scope.execute_rendered(scope.render(&query)?).await
    }
}

/// Inserting many rows through a scope.
#[async_trait]
pub trait EntityInTenant: EntityTrait {
    /// Inserts every model for the scope's tenant in one statement (stamping `tenant_id`
    /// where it is not set); returns how many rows were written. One model carrying another
    /// tenant's id refuses them all, and nothing is written.
    async fn insert_many_in<A, I>(scope: &TenantScope, models: I) -> Result<u64>
    where
        A: ActiveModelTrait<Entity = Self> + Send + 'static,
        I: IntoIterator<Item = A> + Send,
        I::IntoIter: Send;
}

#[async_trait]
impl<E: EntityTrait> EntityInTenant for E {
    async fn insert_many_in<A, I>(scope: &TenantScope, models: I) -> Result<u64>
    where
        A: ActiveModelTrait<Entity = E> + Send + 'static,
        I: IntoIterator<Item = A> + Send,
        I::IntoIter: Send,
    {
        let mut stamped = Vec::new();
        for mut model in models {
            stamp(scope, &mut model)?;
            stamped.push(model);
        }
        if stamped.is_empty() {
            return Ok(0);
        }
        let query: InsertStatement = E::insert_many(stamped).into_query();
        scope.execute_rendered(scope.render(&query)?).await
    }
}
