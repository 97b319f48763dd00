//! Rendering a statement an entity method built for a scope: its tables audited (none outside
//! the tenant's tables), then written by PostgreSQL's query builder, or by [`InSchema`], the
//! same builder with every table in the tenant's schema.

use sea_orm::sea_query::{
    self, Alias, BinOper, EscapeBuilder, Expr, IntoIden, OperLeftAssocDecider, OrderExpr,
    PostgresQueryBuilder, PrecedenceDecider, QueryBuilder, QueryStatementWriter, Quote,
    QuotedBuilder, SchemaName, SelectStatement, SqlWriter, SubQueryStatement, TableName, TableRef,
    TableRefBuilder,
};
use sea_orm::{DbBackend, Statement, Value};
use sea_query::audit::AuditTrait;

use super::{TableNamespace, TenantScope};
use crate::error::{Error, Result};

impl TenantScope {
    /// Renders a statement an entity method built (see [`crate::entity`]) for this scope.
    pub(crate) fn render<S>(&self, stmt: &S) -> Result<sea_orm::Statement>
    where
        S: sea_orm::sea_query::QueryStatementWriter + sea_query::audit::AuditTrait,
    {
        render(&self.namespace, stmt, self.writes())
    }

    /// Renders a statement written with the scope's own builders ([`TenantScope::select`] and
    /// the like, or by hand on [`TenantScope::table`]), which write the tenant's schema
    /// themselves: audited as [`render`] audits an entity's (no control table), except that a
    /// table may name the scope's own schema, and no other.
    pub(crate) fn built<S>(&self, stmt: &S) -> Result<sea_orm::Statement>
    where
        S: QueryStatementWriter + AuditTrait,
    {
        audit(&self.namespace, stmt, OwnSchema::Allowed, self.writes())?;
        let (sql, values) = stmt.build(PostgresQueryBuilder);
        Ok(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
    }

    fn writes(&self) -> Writes {
        if self.read_only {
            Writes::Refused
        } else {
            Writes::Allowed
        }
    }
}

/// Whether a statement may write: not through a read-only scope, which refuses a write (or a
/// change of the schema) with [`Error::ReadOnly`] before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writes {
    Allowed,
    Refused,
}

/// Whether a statement may name the scope's own schema on a table (the scope's builders
/// write it), or must leave every table bare for the scope to place (an entity's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnSchema {
    Allowed,
    Refused,
}

/// The tables `stmt` touches, listed once and refused when the statement writes and `writes`
/// refuses it, when one is a control table, or when one is in a schema other than the scope's
/// own (allowed only with [`OwnSchema::Allowed`]).
fn audit<S: AuditTrait>(
    namespace: &TableNamespace,
    stmt: &S,
    own: OwnSchema,
    writes: Writes,
) -> Result<sea_query::audit::QueryAccessAudit> {
    let audit = stmt.audit().map_err(|e| Error::Invalid {
        field: "statement",
        reason: format!("cannot list the tables it touches: {e}"),
    })?;
    if writes == Writes::Refused
        && let Some(write) = audit
            .requests
            .iter()
            .find(|r| r.access_type != sea_query::audit::AccessType::Select)
    {
        return Err(Error::ReadOnly(format!(
            "{} on {}",
            write.access_type.as_str(),
            write.schema_table.1
        )));
    }
    for request in &audit.requests {
        let TableName(schema, table) = &request.schema_table;
        let table = table.to_string();
        if let Some(schema) = schema {
            let ours = matches!(
                (own, namespace),
                (OwnSchema::Allowed, TableNamespace::Schema(s)) if *s == schema.1.to_string()
            );
            if !ours {
                return Err(Error::Invalid {
                    field: "statement",
                    reason: format!(
                        "names table {}.{table}: a tenant scope decides where tables live, so \
                         a statement sent through it must not name another schema (an entity \
                         used through it must not set schema_name)",
                        schema.1
                    ),
                });
            }
        }
        if table.starts_with("tenancy_") {
            return Err(Error::Invalid {
                field: "statement",
                reason: format!("reaches {table}, a control table, not a tenant table"),
            });
        }
    }
    Ok(audit)
}

// ANCHOR: render
/// A statement an entity method built, rendered for the scope: checked against its tables,
/// then written with the tenant's schema on every table when the namespace has one.
pub(crate) fn render<S>(namespace: &TableNamespace, stmt: &S, writes: Writes) -> Result<Statement>
where
    S: QueryStatementWriter + AuditTrait,
{
    let audit = audit(namespace, stmt, OwnSchema::Refused, writes)?;
    let (sql, values) = match namespace {
        TableNamespace::Unqualified => stmt.build(PostgresQueryBuilder),
        TableNamespace::Schema(schema) => {
            let (sql, values) = stmt.build(InSchema(schema));
            // Every table must have been written in the schema. One that was not (inside
            // an ORDER BY expression, which PostgreSQL's builder writes) would be found
            // through the connection's search_path instead: refused.
            for request in &audit.requests {
                let bare = format!("\"{}\"", request.schema_table.1);
                if ["FROM ", "JOIN ", "INTO ", "UPDATE "]
                    .iter()
                    .any(|kw| sql.contains(&format!("{kw}{bare}")))
                {
                    return Err(Error::Invalid {
                        field: "statement",
                        reason: format!(
                            "table {bare} could not be placed in the tenant's schema (a \
                             sub-query in ORDER BY?); write this statement with the scope's \
                             builders"
                        ),
                    });
                }
            }
            (sql, values)
        }
    };
    Ok(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
}
// ANCHOR_END: render

/// PostgreSQL's query builder, except that a table reference without a schema is written in
/// `self.0`. Column references keep their bare table name (`"invoices"."id"`), which PostgreSQL
/// resolves to the table of that name in the `FROM` list, qualified or not.
///
/// Everything PostgreSQL's builder does differently from sea-query's common one is handed to
/// it, for leaves (values, operators, names); where its version would render sub-statements
/// itself (sub-queries, `ORDER BY` expressions) this builder renders them, so that nothing
/// inside a statement escapes the schema.
#[derive(Debug, Clone, Copy)]
struct InSchema<'a>(&'a str);

const PG: PostgresQueryBuilder = PostgresQueryBuilder;

impl QuotedBuilder for InSchema<'_> {
    fn quote(&self) -> Quote {
        PG.quote()
    }
}

impl EscapeBuilder for InSchema<'_> {
    fn needs_escape(&self, s: &str) -> bool {
        PG.needs_escape(s)
    }

    fn write_escaped(&self, buffer: &mut impl std::fmt::Write, string: &str) {
        PG.write_escaped(buffer, string)
    }

    fn unescape_string(&self, string: &str) -> String {
        PG.unescape_string(string)
    }
}

impl TableRefBuilder for InSchema<'_> {
    fn prepare_table_ref_iden(&self, table_ref: &TableRef, sql: &mut impl SqlWriter) {
        match table_ref {
            TableRef::Table(TableName(None, table), alias) => {
                let schema = SchemaName(None, Alias::new(self.0).into_iden());
                let qualified =
                    TableRef::Table(TableName(Some(schema), table.clone()), alias.clone());
                PG.prepare_table_ref_iden(&qualified, sql)
            }
            other => PG.prepare_table_ref_iden(other, sql),
        }
    }
}

impl OperLeftAssocDecider for InSchema<'_> {
    fn well_known_left_associative(&self, op: &BinOper) -> bool {
        PG.well_known_left_associative(op)
    }
}

impl PrecedenceDecider for InSchema<'_> {
    fn inner_expr_well_known_greater_precedence(
        &self,
        inner: &Expr,
        outer_oper: &sea_query::Oper,
    ) -> bool {
        PG.inner_expr_well_known_greater_precedence(inner, outer_oper)
    }
}

impl QueryBuilder for InSchema<'_> {
    fn placeholder(&self) -> (&'static str, bool) {
        PG.placeholder()
    }

    fn prepare_expr(&self, expr: &Expr, sql: &mut impl SqlWriter) {
        match expr {
            // A cast to an enum type: PostgreSQL's own spelling, around a value or a column.
            Expr::AsEnum(..) => PG.prepare_expr(expr, sql),
            _ => self.prepare_expr_common(expr, sql),
        }
    }

    fn write_value(&self, buf: &mut impl std::fmt::Write, value: &Value) -> std::fmt::Result {
        PG.write_value(buf, value)
    }

    fn prepare_value(&self, value: Value, sql: &mut impl SqlWriter) {
        PG.prepare_value(value, sql)
    }

    fn write_string_quoted(&self, string: &str, buffer: &mut impl std::fmt::Write) {
        PG.write_string_quoted(string, buffer)
    }

    fn write_bytes(&self, bytes: &[u8], buffer: &mut impl std::fmt::Write) {
        PG.write_bytes(bytes, buffer)
    }

    fn if_null_function(&self) -> &str {
        "COALESCE"
    }

    fn prepare_select_distinct(
        &self,
        distinct: &sea_query::SelectDistinct,
        sql: &mut impl SqlWriter,
    ) {
        PG.prepare_select_distinct(distinct, sql)
    }

    fn prepare_select_into(&self, into: &sea_query::SelectInto, sql: &mut impl SqlWriter) {
        PG.prepare_select_into(into, sql)
    }

    fn prepare_bin_oper(&self, op: &BinOper, sql: &mut impl SqlWriter) {
        PG.prepare_bin_oper(op, sql)
    }

    fn prepare_function_name(&self, function: &sea_query::Func, sql: &mut impl SqlWriter) {
        PG.prepare_function_name(function, sql)
    }

    fn prepare_table_sample(&self, select: &SelectStatement, sql: &mut impl SqlWriter) {
        PG.prepare_table_sample(select, sql)
    }

    fn prepare_query_statement(&self, query: &SubQueryStatement, sql: &mut impl SqlWriter) {
        match query {
            SubQueryStatement::SelectStatement(s) => self.prepare_select_statement(s, sql),
            SubQueryStatement::InsertStatement(s) => self.prepare_insert_statement(s, sql),
            SubQueryStatement::UpdateStatement(s) => self.prepare_update_statement(s, sql),
            SubQueryStatement::DeleteStatement(s) => self.prepare_delete_statement(s, sql),
            SubQueryStatement::WithStatement(s) => self.prepare_with_query(s, sql),
        }
    }

    fn prepare_explain_statement(
        &self,
        explain: &sea_query::ExplainStatement,
        sql: &mut impl SqlWriter,
    ) {
        // No entity statement can hold an EXPLAIN (it is not a sub-query kind). PostgreSQL's
        // rendering would leave the inner statement's tables unqualified.
        PG.prepare_explain_statement(explain, sql)
    }

    fn prepare_order_expr(&self, order: &OrderExpr, sql: &mut impl SqlWriter) {
        // PostgreSQL's version writes NULLS FIRST/LAST, which the common one drops; an
        // expression it writes is not qualified, which `render` detects and refuses.
        PG.prepare_order_expr(order, sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::Query;
    use sea_orm::{
        ColumnTrait, EntityTrait, JoinType, QueryFilter, QuerySelect, QueryTrait, RelationTrait,
    };

    // Two tenant tables of an application's own, one referring to the other.
    mod customer {
        use sea_orm::entity::prelude::*;
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "customers")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub tenant_id: Uuid,
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
        }
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    }

    mod order {
        use sea_orm::entity::prelude::*;
        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "orders")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub tenant_id: Uuid,
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            pub customer_id: Uuid,
        }
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {
            #[sea_orm(
                belongs_to = "super::customer::Entity",
                from = "(Column::TenantId, Column::CustomerId)",
                to = "(super::customer::Column::TenantId, super::customer::Column::Id)"
            )]
            Customer,
        }
        impl ActiveModelBehavior for ActiveModel {}
    }

    fn rendered(namespace: &TableNamespace, q: &SelectStatement) -> String {
        render(namespace, q, Writes::Allowed)
            .map(|s| s.sql)
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn every_table_of_a_join_and_a_subquery_goes_to_the_schema() {
        let inner = customer::Entity::find()
            .select_only()
            .column(customer::Column::Id)
            .into_query();
        let q = order::Entity::find()
            .join(JoinType::InnerJoin, order::Relation::Customer.def())
            .filter(order::Column::CustomerId.in_subquery(inner))
            .into_query();
        let sql = rendered(&TableNamespace::Schema("t_acme".into()), &q);
        assert!(sql.contains(r#"FROM "t_acme"."orders""#), "{sql}");
        assert!(sql.contains(r#"JOIN "t_acme"."customers""#), "{sql}");
        assert!(sql.contains(r#"FROM "t_acme"."customers""#), "{sql}");
        assert!(
            !sql.contains(r#" "orders" "#) && !sql.contains(r#"FROM "customers""#),
            "{sql}"
        );
        let bare = rendered(&TableNamespace::Unqualified, &q);
        assert!(
            bare.contains(r#"FROM "orders""#) && !bare.contains("t_acme"),
            "{bare}"
        );
    }

    #[test]
    fn a_statement_outside_the_tenant_tables_is_refused() {
        let mut q = Query::select();
        q.column(sea_query::Asterisk).from(TableName(
            Some(SchemaName(None, Alias::new("public").into_iden())),
            Alias::new("orders").into_iden(),
        ));
        let refused = render(&TableNamespace::Unqualified, &q, Writes::Allowed);
        assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
        let mut q = Query::select();
        q.column(sea_query::Asterisk)
            .from(Alias::new("tenancy_catalog"));
        let refused = render(
            &TableNamespace::Schema("t_acme".into()),
            &q,
            Writes::Allowed,
        );
        assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
    }
}
