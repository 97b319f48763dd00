//! An application's own tenant table, end to end: invoices.
//!
//! A team building on a strategy crate adds a table by writing three things, and changes no
//! strategy crate:
//! 1. an entity ([`invoice`]), with a `tenant_id` column like every tenant table;
//! 2. a sea-orm-migration migration ([`M0100Invoices`]) that creates it, with unqualified
//!    names (each strategy decides where they land);
//! 3. the tenant migrations, the application's own and nothing else ([`migrations`]), given
//!    to the store's options (`migrations: tenancy_example_invoices::migrations()`).
//!
//! Its tenants hold the `invoices` table and no other: core knows no application table, and
//! the workspace's example domain (projects and tasks, crate `tenancy-example`) is not here.
//!
//! Every strategy then provisions new tenants with the table, migrates existing tenants to it
//! (`migrate_all`), and isolates it (row-level security in shared tables, the schema or
//! database elsewhere, and the scope's filter and stamp on every entity statement). The
//! functions below are the application's, written once with entities through a scope;
//! `tests/invoices.rs` runs them under all three strategies and the hybrid store.
//!
//! ```no_run
//! # // no_run: needs a PostgreSQL server; tests/invoices.rs runs the same against one.
//! # async fn f() -> anyhow::Result<()> {
//! use tenancy_core::{NewTenant, Slug, TenantStore};
//! use tenancy_separate_schema::{SeparateSchemaOptions, SeparateSchemaStore};
//!
//! let options = SeparateSchemaOptions {
//!     migrations: tenancy_example_invoices::migrations(),
//!     ..Default::default()
//! };
//! let store = SeparateSchemaStore::connect("postgres://postgres@127.0.0.1/app", options).await?;
//! let acme = store.create_tenant(NewTenant::new(Slug::parse("acme")?, "Acme")).await?;
//! let scope = store.scope(&acme).await?;
//! let invoice = tenancy_example_invoices::bill(&scope, "Globex", 12_500).await?;
//! scope.commit().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use sea_orm_migration::prelude::*;
use tenancy_core::Result;
use tenancy_core::TenantMigrations;
use tenancy_core::TenantScope;
use tenancy_core::entity::{ActiveModelInTenant, ManyInTenant, SelectInTenant};
use uuid::Uuid;

pub mod invoice {
    //! The `invoices` table as an entity.
    use sea_orm::entity::prelude::*;

    // ANCHOR: entity
    /// An invoice to one customer, in cents.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invoices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        /// The tenant; stamped by the scope.
        pub tenant_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        /// The invoice's id.
        pub id: Uuid,
        /// Who is billed.
        pub customer: String,
        /// How much, in cents; more than 0 (a check constraint).
        pub amount_cents: i64,
        /// Whether it has been paid.
        pub paid: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    /// An invoice has no relations.
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
    // ANCHOR_END: entity
}

// ANCHOR: migration
/// Creates `invoices`. The key starts with `tenant_id`, as every key of a tenant table must
/// (shared tables hold every tenant's rows; unique checks bypass row-level security).
#[derive(Debug)]
pub struct M0100Invoices;

impl MigrationName for M0100Invoices {
    fn name(&self) -> &str {
        "m0100_invoices"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0100Invoices {
    async fn up(&self, manager: &SchemaManager) -> std::result::Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(invoice::Entity)
                    .col(ColumnDef::new(invoice::Column::TenantId).uuid().not_null())
                    .col(ColumnDef::new(invoice::Column::Id).uuid().not_null())
                    .col(ColumnDef::new(invoice::Column::Customer).text().not_null())
                    .col(
                        ColumnDef::new(invoice::Column::AmountCents)
                            .big_integer()
                            .not_null()
                            .check(Expr::col(invoice::Column::AmountCents).gt(0)),
                    )
                    .col(
                        ColumnDef::new(invoice::Column::Paid)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .primary_key(
                        Index::create()
                            .col(invoice::Column::TenantId)
                            .col(invoice::Column::Id),
                    )
                    .to_owned(),
            )
            .await
    }
}

/// The second version: an index for a customer's invoices.
#[derive(Debug)]
pub struct M0101InvoicesByCustomer;

impl MigrationName for M0101InvoicesByCustomer {
    fn name(&self) -> &str {
        "m0101_invoices_by_customer"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0101InvoicesByCustomer {
    async fn up(&self, manager: &SchemaManager) -> std::result::Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("invoices_customer_idx")
                    .table(invoice::Entity)
                    .col(invoice::Column::TenantId)
                    .col(invoice::Column::Customer)
                    .to_owned(),
            )
            .await
    }
}

/// This application's tenant migrations, and nothing else: what the store's options take.
/// The list is append-only: a new version is a migration added at the end.
pub fn migrations() -> TenantMigrations {
    TenantMigrations::new(vec![
        Box::new(M0100Invoices),
        Box::new(M0101InvoicesByCustomer),
    ])
}

/// The first version alone, as an application had it before [`M0101InvoicesByCustomer`]:
/// for the tests that migrate tenants from it to [`migrations`].
pub fn first_version() -> TenantMigrations {
    TenantMigrations::new(vec![Box::new(M0100Invoices)])
}
// ANCHOR_END: migration

// ANCHOR: functions
/// Bills `customer` for `cents`; the scope stamps the tenant.
pub async fn bill(scope: &TenantScope, customer: &str, cents: i64) -> Result<invoice::Model> {
    invoice::ActiveModel {
        id: Set(Uuid::now_v7()),
        customer: Set(customer.to_owned()),
        amount_cents: Set(cents),
        ..Default::default()
    }
    .insert_in(scope)
    .await
}

/// The tenant's unpaid invoices, oldest first.
pub async fn unpaid(scope: &TenantScope) -> Result<Vec<invoice::Model>> {
    invoice::Entity::find()
        .filter(invoice::Column::Paid.eq(false))
        .order_by_asc(invoice::Column::Id)
        .all_in(scope)
        .await
}

/// Marks every unpaid invoice of `customer` paid; returns how many.
pub async fn settle(scope: &TenantScope, customer: &str) -> Result<u64> {
    invoice::Entity::update_many()
        .col_expr(invoice::Column::Paid, Expr::value(true))
        .filter(invoice::Column::Customer.eq(customer))
        .filter(invoice::Column::Paid.eq(false))
        .exec_in(scope)
        .await
}
// ANCHOR_END: functions
